//! TLS for reqwest: rustls with the ring provider, installed once per process. (reqwest is
//! built without a bundled provider to avoid compiling aws-lc.)

use std::sync::Once;

static INSTALL: Once = Once::new();

pub fn ensure_provider() {
    INSTALL.call_once(|| {
        // Another crate may have installed one first; either way there is one now.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
