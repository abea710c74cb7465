//! Neo4j's HTTP authentication, as the lab's Neo4j nodes enforce it.
//!
//! Neo4j 3.x turns authentication on by default (`dbms.security.auth_enabled=true`), and its
//! server filter (neo4j/neo4j 3.x `server/rest/dbms/AuthorizationEnabledFilter.java`) answers
//! every request outside its whitelist (`dbms.security.http_auth_whitelist`, default `/` and
//! `/browser.*`) that lacks valid Basic credentials:
//! - no `Authorization` header: 401, `WWW-Authenticate: Basic realm="Neo4j"`,
//!   `Neo.ClientError.Security.Unauthorized` "No authentication header supplied.";
//! - a header that is not `Basic base64(user:password)`: 400 `Neo.ClientError.Request.InvalidFormat`
//!   "Invalid authentication header.";
//! - wrong credentials: 401, the same challenge, "Invalid username or password.".
//!
//! The status endpoints are not whitelisted unless their own setting says so:
//! `dbms.security.causal_clustering_status_auth_enabled` (`/db/manage/server/core/*`,
//! `.../causalclustering/*`) and `dbms.security.ha_status_auth_enabled`
//! (`/db/manage/server/ha/*`) both default to true (3.x `CausalClusteringSettings`,
//! `HaSettings`; `EnterpriseNeoServer.getUriWhitelist`; Neo4j 3.3 operations manual §8.4.2.1).
//! The lab keeps every default: all of `/db/` needs the credentials. Its `/kv` data plane and its
//! `/_lab/` admin routes are the lab's own, not Neo4j's, and stay open.
//!
//! The lab's credentials are a fresh password per lab, written as the Basic token
//! (`base64(neo4j:password)`) to a 0600 file in the lab's directory; its target reads it as a
//! secret (`[secrets] neo4j_basic_auth = { file = ... }`), so it never appears in a plan, a
//! journal or a command line.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use serde_json::json;

use super::LabError;

/// The user the lab's Neo4j knows (Neo4j's own initial user).
pub const LAB_USER: &str = "neo4j";

/// The file in the lab's directory that holds the Basic token.
pub const SECRET_FILE: &str = "neo4j-auth";

/// The one user and password a lab's Neo4j nodes accept.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    password: String,
    /// `base64(user:password)`, as an `Authorization: Basic` header carries it.
    token: String,
    file: PathBuf,
}

impl Credentials {
    /// A fresh password (16 random bytes from the kernel, hex), its token written to
    /// `dir/neo4j-auth` (mode 0600).
    pub fn create(dir: &Path) -> Result<Credentials, LabError> {
        let mut bytes = [0u8; 16];
        let urandom = Path::new("/dev/urandom");
        std::fs::File::open(urandom)
            .and_then(|mut f| f.read_exact(&mut bytes))
            .map_err(|e| LabError::Io {
                path: urandom.to_path_buf(),
                source: e,
            })?;
        let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{LAB_USER}:{password}"));
        let file = dir.join(SECRET_FILE);
        let io = |source| LabError::Io {
            path: file.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&file)
            .map_err(io)?;
        // `mode` applies only when the file is created: one left by an earlier lab keeps its
        // old mode unless it is set again, before the token goes in.
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(io)?;
        std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes()).map_err(io)?;
        Ok(Credentials {
            password,
            token,
            file,
        })
    }

    /// Where the token is (the lab target's secret file).
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// The header value a client sends: `Basic <token>`.
    pub fn header(&self) -> String {
        format!("Basic {}", self.token)
    }

    /// `None` when the request may go on; else the answer Neo4j gives.
    pub fn refuse(&self, headers: &HeaderMap) -> Option<Response> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Some(challenge(unauthorized(
                "No authentication header supplied.",
            )));
        };
        let Some((user, password)) = decode(value) else {
            return Some(
                (
                    StatusCode::BAD_REQUEST,
                    Json(errors(
                        "Neo.ClientError.Request.InvalidFormat",
                        "Invalid authentication header.",
                    )),
                )
                    .into_response(),
            );
        };
        if user == LAB_USER && password == self.password {
            None
        } else {
            Some(challenge(unauthorized("Invalid username or password.")))
        }
    }
}

/// Whether Neo4j asks for credentials on this path: all of its REST API and status endpoints.
pub(crate) fn guarded(path: &str) -> bool {
    path.starts_with("/db/")
}

/// `Basic base64(user:password)` -> (user, password) (3.x `AuthorizationHeaders.decode`).
fn decode(value: &HeaderValue) -> Option<(String, String)> {
    let text = value.to_str().ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn errors(code: &str, message: &str) -> serde_json::Value {
    json!({"errors": [{"code": code, "message": message}]})
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(errors("Neo.ClientError.Security.Unauthorized", message)),
    )
        .into_response()
}

fn challenge(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"Neo4j\""),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_labs_own_credentials_pass() {
        let dir = tempfile::tempdir().unwrap();
        let c = Credentials::create(dir.path()).unwrap();
        let on_disk = std::fs::read_to_string(c.file()).unwrap();
        assert_eq!(format!("Basic {}", on_disk.trim()), c.header());
        let mode = std::fs::metadata(c.file()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            c.refuse(&h).map(|r| r.status().as_u16())
        };
        assert_eq!(with(&c.header()), None);
        assert_eq!(
            c.refuse(&HeaderMap::new()).map(|r| r.status().as_u16()),
            Some(401)
        );
        assert_eq!(with(""), Some(400));
        assert_eq!(with("Bearer x"), Some(400));
        let wrong = base64::engine::general_purpose::STANDARD.encode("neo4j:neo4j");
        assert_eq!(with(&format!("Basic {wrong}")), Some(401));
        assert!(guarded("/db/data/"));
        assert!(!guarded("/kv/x"));
        assert!(!guarded("/_lab/status"));
    }
}
