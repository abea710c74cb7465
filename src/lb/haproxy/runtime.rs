//! Socket I/O with HAProxy's runtime API (the `stats socket`).
//!
//! One connection per command in HAProxy's default non-interactive mode: send `cmd\n`, read to
//! EOF. Measured on HAProxy 2.6 over loopback TCP (500 × `show stat <be> 4 -1`): about 290 µs per
//! command with a fresh connection versus 170 µs per command over one `prompt`-mode connection.
//! At the cockpit's polling rate (two commands per second per target) the ~0.1 ms difference
//! is noise, and a fresh connection needs no reply framing (the prompt's `\n> ` could appear in
//! output) and no reconnect logic after HAProxy's `stats timeout` or a reload.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::lb::LbError;

/// Replies larger than this are cut off as a protocol error rather than buffered without bound
/// (a `show stat` of a few hundred servers is well under 1 MiB).
const MAX_REPLY_BYTES: u64 = 16 * 1024 * 1024;

/// Where the runtime API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAddress {
    /// `host:port`.
    Tcp(String),
    /// A unix stream socket path.
    Unix(PathBuf),
}

impl SocketAddress {
    /// `/path` or `unix:/path` is a unix socket; anything else is `host:port`. HAProxy's own
    /// `ipv4@` / `ipv6@` prefixes (as written on the `stats socket` line) are accepted too.
    pub fn parse(address: &str) -> Result<Self, LbError> {
        let address = address.trim();
        let unix_path = match address
            .strip_prefix("unix:")
            .or(address.strip_prefix("unix@"))
        {
            Some(path) => Some(path),
            None if address.starts_with('/') => Some(address),
            None => None,
        };
        if let Some(path) = unix_path {
            if path.is_empty() {
                return Err(LbError::Protocol(
                    "the HAProxy address `unix:` names no socket path".into(),
                ));
            }
            return Ok(SocketAddress::Unix(PathBuf::from(path)));
        }
        let hostport = address
            .strip_prefix("ipv4@")
            .or_else(|| address.strip_prefix("ipv6@"))
            .unwrap_or(address);
        match hostport.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(SocketAddress::Tcp(hostport.to_string()))
            }
            _ => Err(LbError::Protocol(format!(
                "HAProxy address {address:?} is neither `host:port` nor a unix socket path \
                 (`/run/haproxy/admin.sock` or `unix:/run/haproxy/admin.sock`)"
            ))),
        }
    }
}

impl std::fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocketAddress::Tcp(hostport) => f.write_str(hostport),
            SocketAddress::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// A client of one runtime API socket.
#[derive(Debug, Clone)]
pub struct RuntimeClient {
    address: SocketAddress,
    connect_timeout: Duration,
    read_timeout: Duration,
}

impl RuntimeClient {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
    pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(5);

    pub fn new(address: SocketAddress) -> Self {
        Self {
            address,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            read_timeout: Self::DEFAULT_READ_TIMEOUT,
        }
    }

    pub fn with_timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.connect_timeout = connect;
        self.read_timeout = read;
        self
    }

    pub fn address(&self) -> &SocketAddress {
        &self.address
    }

    /// Sends one command and returns HAProxy's whole reply, unparsed.
    ///
    /// The command must be a single line without `;`: those would make HAProxy run several
    /// commands, so callers build commands only from validated names (see
    /// [`super::parse::check_name`]).
    pub async fn command(&self, cmd: &str) -> Result<String, LbError> {
        if cmd.contains(['\n', '\r', ';']) {
            return Err(LbError::Protocol(format!(
                "refusing to send {cmd:?}: a runtime command is one line without `;`"
            )));
        }
        match &self.address {
            SocketAddress::Tcp(hostport) => {
                let stream = self
                    .connect(tokio::net::TcpStream::connect(hostport.as_str()))
                    .await?;
                self.exchange(stream, cmd).await
            }
            #[cfg(unix)]
            SocketAddress::Unix(path) => {
                let stream = self.connect(tokio::net::UnixStream::connect(path)).await?;
                self.exchange(stream, cmd).await
            }
            #[cfg(not(unix))]
            SocketAddress::Unix(_) => Err(self.unreachable(
                "unix sockets are not supported on this platform; use host:port".into(),
            )),
        }
    }

    async fn connect<S>(
        &self,
        connecting: impl std::future::Future<Output = std::io::Result<S>>,
    ) -> Result<S, LbError> {
        match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(e)) => Err(self.unreachable(e.to_string())),
            Err(_) => Err(self.unreachable(format!(
                "no connection within {}",
                humantime::format_duration(self.connect_timeout)
            ))),
        }
    }

    async fn exchange<S>(&self, mut stream: S, cmd: &str) -> Result<String, LbError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let io = async {
            stream.write_all(format!("{cmd}\n").as_bytes()).await?;
            stream.flush().await?;
            let mut reply = Vec::new();
            (&mut stream)
                .take(MAX_REPLY_BYTES + 1)
                .read_to_end(&mut reply)
                .await?;
            Ok::<_, std::io::Error>(reply)
        };
        let reply = match tokio::time::timeout(self.read_timeout, io).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e)) => return Err(self.unreachable(format!("during {cmd:?}: {e}"))),
            Err(_) => {
                return Err(self.unreachable(format!(
                    "no complete answer to {cmd:?} within {}",
                    humantime::format_duration(self.read_timeout)
                )))
            }
        };
        if reply.len() as u64 > MAX_REPLY_BYTES {
            return Err(LbError::Protocol(format!(
                "the answer to {cmd:?} is larger than {MAX_REPLY_BYTES} bytes"
            )));
        }
        String::from_utf8(reply)
            .map_err(|_| LbError::Protocol(format!("the answer to {cmd:?} is not UTF-8")))
    }

    fn unreachable(&self, reason: String) -> LbError {
        LbError::Unreachable {
            address: self.address.to_string(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            SocketAddress::parse("/run/haproxy/admin.sock").unwrap(),
            SocketAddress::Unix("/run/haproxy/admin.sock".into())
        );
        assert_eq!(
            SocketAddress::parse("unix:/run/haproxy/admin.sock").unwrap(),
            SocketAddress::Unix("/run/haproxy/admin.sock".into())
        );
        assert_eq!(
            SocketAddress::parse("127.0.0.1:9999").unwrap(),
            SocketAddress::Tcp("127.0.0.1:9999".into())
        );
        assert_eq!(
            SocketAddress::parse("ipv4@127.0.0.1:9999").unwrap(),
            SocketAddress::Tcp("127.0.0.1:9999".into())
        );
        assert_eq!(
            SocketAddress::parse("lb.internal:9999").unwrap(),
            SocketAddress::Tcp("lb.internal:9999".into())
        );
        for bad in ["", "unix:", "lb.internal", ":9999", "host:notaport"] {
            assert!(SocketAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["unix:/run/haproxy/admin.sock", "127.0.0.1:9999"] {
            assert_eq!(SocketAddress::parse(s).unwrap().to_string(), s);
        }
    }

    #[tokio::test]
    async fn unreachable_names_the_address() {
        // Bind then drop to get a port with (almost certainly) nobody listening.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = RuntimeClient::new(SocketAddress::Tcp(format!("127.0.0.1:{port}")));
        match client.command("show info").await {
            Err(LbError::Unreachable { address, .. }) => {
                assert_eq!(address, format!("127.0.0.1:{port}"))
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn missing_unix_socket_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.sock");
        let client = RuntimeClient::new(SocketAddress::Unix(path.clone()));
        match client.command("show info").await {
            Err(LbError::Unreachable { address, .. }) => {
                assert_eq!(address, format!("unix:{}", path.display()))
            }
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn refuses_multi_command_lines() {
        let client = RuntimeClient::new(SocketAddress::Tcp("127.0.0.1:1".into()));
        for cmd in ["show info;show stat", "show info\nshow stat"] {
            assert!(matches!(
                client.command(cmd).await,
                Err(LbError::Protocol(_))
            ));
        }
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accept and hold the connection open without answering.
        let holder = tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            std::future::pending::<()>().await;
            drop(conn);
        });
        let client = RuntimeClient::new(SocketAddress::Tcp(addr.to_string()))
            .with_timeouts(Duration::from_secs(1), Duration::from_millis(100));
        let err = client.command("show info").await.unwrap_err();
        assert!(matches!(err, LbError::Unreachable { .. }), "{err:?}");
        holder.abort();
    }

    #[tokio::test]
    async fn reads_the_whole_reply_to_eof() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut line = Vec::new();
            let mut byte = [0u8; 1];
            while conn.read_exact(&mut byte).await.is_ok() && byte[0] != b'\n' {
                line.push(byte[0]);
            }
            conn.write_all(b"Name: HAProxy\n").await.unwrap();
            conn.write_all(b"Version: 2.6.12\n\n").await.unwrap();
            String::from_utf8(line).unwrap()
        });
        let client = RuntimeClient::new(SocketAddress::Tcp(addr.to_string()));
        let reply = client.command("show info").await.unwrap();
        assert_eq!(reply, "Name: HAProxy\nVersion: 2.6.12\n\n");
        assert_eq!(server.await.unwrap(), "show info");
    }
}
