//! The pairing wire format: one JSON object per line over a Unix socket.
//!
//! A connection opens with the client's `hello` (or a one-shot `status` request); the server
//! answers `welcome` or `refused`. After a welcome the server streams `event`s (history after
//! the client's `after_seq`, then live ones), live samples at most once a second (as `samples`
//! frames when the hello asked for them, else as events) and a `reply` for every `command`
//! but `alive` (a sign of life every few seconds, answered by nothing).
//! A client may say what it shows (`viewport`, any time after its hello): from then on it gets
//! the live samples of those nodes only. A viewport is not a command and gets no reply unless
//! it is refused.
//!
//! A malformed line after the handshake is answered with an error reply (carrying the command's
//! id when it can be read, else id 0) and the connection is kept: one bad line from a newer or
//! buggy client must not drop an operator out of a live session. A line longer than the limit
//! closes the connection, since the stream cannot be resynchronised safely.

use serde::{Deserialize, Serialize};

use super::samples::Samples;
use crate::engine::client::Viewport;
use crate::engine::{Command, Rejected, Stamped};

/// The protocol this build speaks; a hello with any other version is refused, and a client
/// refuses a welcome with another. 2: numbered probe rows in `samples` frames, no reply to
/// `alive`, no probe summaries once a viewport is set.
pub const PROTOCOL: u32 = 2;
/// Longest line a server accepts from a client (commands are small).
pub const MAX_CLIENT_LINE: usize = 64 * 1024;
/// Longest line a client accepts from a server (`session_started` carries the whole plan).
pub const MAX_SERVER_LINE: usize = 16 * 1024 * 1024;
/// Most node rows a viewport may name: a cockpit gives the nodes a third of its screen, so even
/// a very tall terminal shows far fewer. What a connection holds for it stays bounded.
pub const MAX_VIEWPORT_NODES: usize = 256;
/// Longest node name a viewport may carry, in bytes.
pub const MAX_VIEWPORT_NAME: usize = 256;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ClientMsg {
    Hello(Hello),
    Command(CommandMsg),
    /// Ask for the session's summary without attaching (for `flightdeck sessions`).
    Status(StatusRequest),
    /// What the client shows: live samples only for these nodes from now on.
    Viewport(Viewport),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hello {
    pub protocol: u32,
    pub operator: String,
    /// How the operator shows in the session (`alice@laptop`); the operator name if absent.
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub want_driver: bool,
    /// Events up to this seq are already known to the client; 0 = send everything.
    #[serde(default)]
    pub after_seq: u64,
    /// The client reads live samples as `samples` frames (`pairing::samples`); without it
    /// they come as `event` lines.
    #[serde(default)]
    pub samples: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommandMsg {
    pub id: u64,
    pub cmd: Command,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusRequest {}

// An `event` line carries a whole `SessionStarted` plan; boxing it would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum ServerMsg {
    Welcome(Welcome),
    Refused(Refused),
    Event(Stamped),
    /// Live samples, the latest of each since the last frame (`pairing::samples`).
    Samples(Samples),
    Reply(Reply),
    Status(Status),
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Welcome {
    pub protocol: u32,
    pub operator_id: u64,
    pub session: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refused {
    pub reason: String,
}

/// The answer to one command: `{"id":7,"ok":true}` or `{"id":7,"error":"..."}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Reply {
    pub id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Reply {
    pub fn from_result(id: u64, result: Result<(), Rejected>) -> Self {
        match result {
            Ok(()) => Reply {
                id,
                ok: Some(true),
                error: None,
            },
            Err(Rejected(e)) => Reply::error(id, e),
        }
    }

    pub fn error(id: u64, error: impl Into<String>) -> Self {
        Reply {
            id,
            ok: None,
            error: Some(error.into()),
        }
    }

    /// An error wins over `ok`; a reply with neither counts as success only if `ok` says so.
    pub fn into_result(self) -> Result<(), Rejected> {
        match (self.error, self.ok) {
            (Some(e), _) => Err(Rejected(e)),
            (None, Some(true)) => Ok(()),
            (None, _) => Err(Rejected("the session gave an empty answer".into())),
        }
    }
}

/// A session's summary, as `flightdeck sessions` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Status {
    pub session: String,
    pub procedure: String,
    pub target: String,
    /// Steps settled (done or skipped).
    pub steps_done: usize,
    pub steps_total: usize,
    /// The step the session is on (1-based), if it is not finished.
    pub current_step: Option<usize>,
    /// `forward`, `rolling back`, `rolling back: verifying`, `completed`, `aborted`, or a
    /// rollback's outcome: `rolled back (verified)` or `rolled back, NOT verified: ...`
    /// (`engine::outcome::outcome_text`, the same words as the cockpit and the report).
    pub mode: String,
    pub operators: Vec<StatusOperator>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StatusOperator {
    pub id: u64,
    pub name: String,
    pub driver: bool,
}

/// One message as a line, newline included.
pub fn encode<T: Serialize>(msg: &T) -> String {
    // These types serialize only strings, numbers and maps with string keys: infallible.
    let mut line = serde_json::to_string(msg).unwrap_or_else(|e| {
        serde_json::json!({"reply": {"id": 0, "error": format!("cannot encode: {e}")}}).to_string()
    });
    line.push('\n');
    line
}

/// What the server makes of a line received after the handshake.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    Command(CommandMsg),
    /// A viewport within the bounds.
    Viewport(Viewport),
    /// A line it cannot act on, with the error reply to send back.
    Malformed(Reply),
}

/// Parse a client line after the handshake. Never fails: a bad line becomes an error reply that
/// names the command's id when it can be found, so the client can match it to its request.
pub fn parse_client_line(line: &str) -> Incoming {
    match serde_json::from_str::<ClientMsg>(line) {
        Ok(ClientMsg::Command(c)) => Incoming::Command(c),
        Ok(ClientMsg::Viewport(v)) => match check_viewport(&v) {
            Ok(()) => Incoming::Viewport(v),
            Err(e) => Incoming::Malformed(Reply::error(0, e)),
        },
        Ok(ClientMsg::Hello(_)) => Incoming::Malformed(Reply::error(0, "already said hello")),
        Ok(ClientMsg::Status(_)) => Incoming::Malformed(Reply::error(
            0,
            "status is asked on its own connection, instead of hello",
        )),
        Err(e) => {
            let id = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v.get("command")?.get("id")?.as_u64())
                .unwrap_or(0);
            Incoming::Malformed(Reply::error(id, format!("malformed line: {e}")))
        }
    }
}

/// A viewport within [`MAX_VIEWPORT_NODES`] names of at most [`MAX_VIEWPORT_NAME`] bytes;
/// else why it is refused (the connection keeps the viewport it had).
pub fn check_viewport(v: &Viewport) -> Result<(), String> {
    if v.nodes.len() > MAX_VIEWPORT_NODES {
        return Err(format!(
            "viewport refused: {} nodes (at most {MAX_VIEWPORT_NODES})",
            v.nodes.len()
        ));
    }
    if let Some(long) = v.nodes.iter().find(|n| n.len() > MAX_VIEWPORT_NAME) {
        return Err(format!(
            "viewport refused: a node name of {} bytes (at most {MAX_VIEWPORT_NAME})",
            long.len()
        ));
    }
    Ok(())
}

/// The JSON-lines framing for a stream, reading lines of at most `max` bytes (newline
/// excluded). An over-long line is an error (`MaxLineLengthExceeded`), as is invalid UTF-8.
pub fn lines<R: tokio::io::AsyncRead>(
    reader: R,
    max: usize,
) -> tokio_util::codec::FramedRead<R, tokio_util::codec::LinesCodec> {
    tokio_util::codec::FramedRead::new(
        reader,
        tokio_util::codec::LinesCodec::new_with_max_length(max),
    )
}

/// The next line from `lines`: `Ok(None)` at a clean end of stream; an over-long line or
/// invalid UTF-8 is an `InvalidData` error.
pub async fn next_line<R>(
    lines: &mut tokio_util::codec::FramedRead<R, tokio_util::codec::LinesCodec>,
) -> std::io::Result<Option<String>>
where
    R: tokio::io::AsyncRead + Unpin,
{
    use futures::StreamExt;
    use tokio_util::codec::LinesCodecError;
    match lines.next().await {
        None => Ok(None),
        Some(Ok(line)) => Ok(Some(line)),
        Some(Err(LinesCodecError::MaxLineLengthExceeded)) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {} bytes", lines.decoder().max_length()),
        )),
        Some(Err(LinesCodecError::Io(e))) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Event;

    fn round<T: Serialize + for<'de> Deserialize<'de> + PartialEq + std::fmt::Debug>(v: &T) {
        let line = encode(v);
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        let back: T = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(&back, v);
    }

    #[test]
    fn hello_matches_the_documented_shape_and_round_trips() {
        let text = r#"{"hello":{"protocol":2,"operator":"alice","label":"alice@laptop","want_driver":false,"after_seq":0}}"#;
        let msg: ClientMsg = serde_json::from_str(text).unwrap();
        let ClientMsg::Hello(h) = &msg else {
            panic!("not a hello: {msg:?}")
        };
        assert_eq!(h.operator, "alice");
        assert_eq!(h.label.as_deref(), Some("alice@laptop"));
        round(&msg);
        // Optional fields may be left out.
        let short: ClientMsg =
            serde_json::from_str(r#"{"hello":{"protocol":2,"operator":"bob"}}"#).unwrap();
        assert!(matches!(
            short,
            ClientMsg::Hello(Hello {
                after_seq: 0,
                want_driver: false,
                ..
            })
        ));
    }

    #[test]
    fn server_messages_round_trip() {
        let welcome = ServerMsg::Welcome(Welcome {
            protocol: 1,
            operator_id: 3,
            session: "blue-otter".into(),
        });
        assert_eq!(
            encode(&welcome),
            "{\"welcome\":{\"protocol\":1,\"operator_id\":3,\"session\":\"blue-otter\"}}\n"
        );
        round(&welcome);
        round(&ServerMsg::Refused(Refused {
            reason: "uid 1001 is not allowed".into(),
        }));
        round(&ServerMsg::Event(Stamped {
            seq: 4,
            t_ms: 120,
            event: Event::Note {
                by: "alice".into(),
                text: "hi".into(),
            },
        }));
        round(&ServerMsg::Status(Status {
            session: "s".into(),
            procedure: "p".into(),
            target: "t".into(),
            steps_done: 1,
            steps_total: 3,
            current_step: Some(2),
            mode: "forward".into(),
            operators: vec![StatusOperator {
                id: 1,
                name: "alice".into(),
                driver: true,
            }],
        }));
    }

    #[test]
    fn replies_have_the_documented_shapes() {
        let ok = ServerMsg::Reply(Reply::from_result(7, Ok(())));
        assert_eq!(encode(&ok), "{\"reply\":{\"id\":7,\"ok\":true}}\n");
        let err = ServerMsg::Reply(Reply::from_result(7, Err(Rejected("no".into()))));
        assert_eq!(encode(&err), "{\"reply\":{\"id\":7,\"error\":\"no\"}}\n");
        round(&ok);
        round(&err);
        assert_eq!(Reply::from_result(1, Ok(())).into_result(), Ok(()));
        assert_eq!(
            Reply::error(1, "x").into_result(),
            Err(Rejected("x".into()))
        );
    }

    #[test]
    fn commands_round_trip() {
        for cmd in [
            Command::Confirm {
                prompt: 5,
                phrase: Some("wipe node1".into()),
            },
            Command::Approve { prompt: 5 },
            Command::GrantControl { to: 2 },
            Command::RequestControl,
            Command::Note {
                text: "\"quoted\"\nnewline".into(),
            },
        ] {
            let msg = ClientMsg::Command(CommandMsg { id: 9, cmd });
            round(&msg);
            let line = encode(&msg);
            assert_eq!(
                parse_client_line(line.trim_end()),
                Incoming::Command(match msg {
                    ClientMsg::Command(c) => c,
                    _ => unreachable!(),
                })
            );
        }
    }

    #[test]
    fn viewports_round_trip_and_oversized_ones_are_refused() {
        let v = Viewport {
            nodes: vec!["node1".into(), "node2".into()],
        };
        let msg = ClientMsg::Viewport(v.clone());
        round(&msg);
        let line = encode(&msg);
        assert_eq!(line, "{\"viewport\":{\"nodes\":[\"node1\",\"node2\"]}}\n");
        assert_eq!(parse_client_line(line.trim_end()), Incoming::Viewport(v));
        assert_eq!(
            parse_client_line(r#"{"viewport":{"nodes":[]}}"#),
            Incoming::Viewport(Viewport::default())
        );

        let too_many = Viewport {
            nodes: (0..=MAX_VIEWPORT_NODES).map(|i| format!("n{i}")).collect(),
        };
        let line = encode(&ClientMsg::Viewport(too_many));
        assert!(
            line.len() < MAX_CLIENT_LINE,
            "fits a line: refused for its count"
        );
        let Incoming::Malformed(r) = parse_client_line(line.trim_end()) else {
            panic!("took a viewport of {} nodes", MAX_VIEWPORT_NODES + 1)
        };
        assert!(r.error.unwrap().contains("at most 256"));
        let long = Viewport {
            nodes: vec!["x".repeat(MAX_VIEWPORT_NAME + 1)],
        };
        let Incoming::Malformed(r) =
            parse_client_line(encode(&ClientMsg::Viewport(long)).trim_end())
        else {
            panic!("took an over-long node name")
        };
        assert!(r.error.unwrap().contains("bytes"));
        // Not a viewport: refused like any malformed line.
        assert!(matches!(
            parse_client_line(r#"{"viewport":{"nodes":"node1"}}"#),
            Incoming::Malformed(_)
        ));
    }

    #[tokio::test]
    async fn lines_are_read_up_to_the_limit() {
        let data = b"short\n0123456789abcdef\nlast".to_vec();
        let mut r = lines(&data[..], 8);
        assert_eq!(next_line(&mut r).await.unwrap().as_deref(), Some("short"));
        let e = next_line(&mut r).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("longer than 8 bytes"), "{e}");
        let mut r = lines(&b"a\nlast"[..], 8);
        assert_eq!(next_line(&mut r).await.unwrap().as_deref(), Some("a"));
        assert_eq!(next_line(&mut r).await.unwrap().as_deref(), Some("last"));
        assert_eq!(next_line(&mut r).await.unwrap(), None);
        let mut r = lines(&b"\xff\xfe\n"[..], 8);
        assert_eq!(
            next_line(&mut r).await.unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn malformed_lines_become_error_replies_with_the_id_when_readable() {
        let Incoming::Malformed(r) = parse_client_line("not json at all") else {
            panic!("accepted garbage")
        };
        assert_eq!(r.id, 0);
        assert!(r.error.unwrap().contains("malformed"));
        let Incoming::Malformed(r) =
            parse_client_line(r#"{"command":{"id":12,"cmd":{"cmd":"launch_missiles"}}}"#)
        else {
            panic!("accepted an unknown command")
        };
        assert_eq!(r.id, 12);
        let Incoming::Malformed(r) =
            parse_client_line(r#"{"hello":{"protocol":2,"operator":"again"}}"#)
        else {
            panic!("accepted a second hello")
        };
        assert!(r.error.unwrap().contains("hello"));
    }
}
