//! Logs go to a file (never the terminal, which belongs to the cockpit):
//! `<data dir>/logs/flightdeck.log`, level from `FLIGHTDECK_LOG` (default `info`).

use tracing_appender::non_blocking::WorkerGuard;

fn log_dir() -> std::path::PathBuf {
    directories::ProjectDirs::from("", "", "flightdeck")
        .map(|d| d.data_dir().join("logs"))
        .unwrap_or_else(|| std::env::temp_dir().join("flightdeck-logs"))
}

/// The log file, to point operators at.
pub fn log_path() -> std::path::PathBuf {
    log_dir().join("flightdeck.log")
}

/// The shared log is the owner's alone: its folder 0700, the file 0600 (created so before the
/// appender opens it, and narrowed if an older version left it wider). It holds what the
/// server did (joins with uids, refusals, errors), never notes, commands or secrets.
pub fn prepare(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let file = dir.join("flightdeck.log");
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&file)?;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
}

/// Install the file logger; keep the guard alive for the life of the program.
pub fn init() -> Option<WorkerGuard> {
    let dir = log_dir();
    prepare(&dir).ok()?;
    let appender = tracing_appender::rolling::never(&dir, "flightdeck.log");
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLIGHTDECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init()
        .ok()?;
    Some(guard)
}
