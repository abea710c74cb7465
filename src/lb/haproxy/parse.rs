//! Pure parsing of HAProxy runtime API replies (`show stat`, `show servers state`, the text a
//! mutating command answers), so it can be tested on captured replies without a running HAProxy.

use crate::lb::LbError;
use crate::procedure::model::Membership;

/// What `stats socket` needs for `set server`; shown when HAProxy answers "Permission denied".
pub const NEEDS_ADMIN: &str =
    "the stats socket is not at `level admin`: add `level admin` to the `stats socket` line";

/// One server row of `show stat <backend> 4 -1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatRow {
    pub backend: String,
    pub server: String,
    /// HAProxy's status text: `UP`, `DOWN 1/2`, `DRAIN`, `MAINT`, `no check`, ...
    pub status: String,
    /// Current sessions (`scur`).
    pub sessions: Option<u64>,
    /// Effective weight.
    pub weight: Option<u16>,
    /// Last health-check result (`L7OK`, `L4CON`, ...) without the running-check `* ` mark.
    pub check_status: Option<String>,
}

/// One server line of `show servers state <backend>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    pub backend: String,
    pub server: String,
    /// `srv_op_state`: 0 stopped, 1 starting, 2 running, 3 stopping.
    pub op_state: u8,
    /// `srv_admin_state` bitmask (see [`membership_from_admin`]).
    pub admin_state: u32,
    /// `srv_uweight`: the weight as last set by configuration or `set weight`.
    pub user_weight: Option<u16>,
}

// `srv_admin_state` bits (HAProxy `SRV_ADMF_*`).
const ADMF_FMAINT: u32 = 0x01;
const ADMF_IMAINT: u32 = 0x02;
const ADMF_CMAINT: u32 = 0x04;
const ADMF_FDRAIN: u32 = 0x08;
const ADMF_IDRAIN: u32 = 0x10;
const ADMF_RMAINT: u32 = 0x20;

/// Membership from `srv_admin_state`. Maintenance wins over drain because a server in both
/// takes no traffic at all. Inherited states (via a tracked server) count: the server is just
/// as out of rotation.
pub fn membership_from_admin(admin_state: u32) -> Membership {
    if admin_state & (ADMF_FMAINT | ADMF_IMAINT | ADMF_CMAINT | ADMF_RMAINT) != 0 {
        Membership::Maint
    } else if admin_state & (ADMF_FDRAIN | ADMF_IDRAIN) != 0 {
        Membership::Drain
    } else {
        Membership::Ready
    }
}

/// Server and backend names go into command lines, so only the characters HAProxy itself
/// allows in names (letters, digits, `-`, `_`, `.`, `:`) pass; anything else could smuggle a
/// second command in.
pub fn check_name(what: &str, name: &str) -> Result<(), LbError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(LbError::Protocol(format!(
            "{what} name {name:?} is not a valid HAProxy name (letters, digits, '-', '_', '.', ':')"
        )))
    }
}

/// The answer to a mutating command: anything but an empty reply is a failure.
pub fn command_outcome(reply: &str, backend: &str, server: &str) -> Result<(), LbError> {
    let text = reply.trim();
    if text.is_empty() {
        return Ok(());
    }
    Err(match known_error(text, backend) {
        Some(err) => err,
        None if text.starts_with("No such server") => LbError::UnknownServer(server.to_string()),
        None => LbError::Protocol(text.to_string()),
    })
}

/// Errors that any command may answer instead of its output.
fn known_error(text: &str, backend: &str) -> Option<LbError> {
    let first = text.lines().next().unwrap_or_default().trim();
    if text.contains("Permission denied") {
        Some(LbError::Refused(NEEDS_ADMIN.to_string()))
    } else if matches!(
        first,
        "No such backend." | "No such proxy." | "Can't find backend."
    ) {
        Some(LbError::UnknownBackend(backend.to_string()))
    } else {
        None
    }
}

/// The reply of a read command that did not start the way its output does.
fn read_failure(reply: &str, backend: &str, cmd: &str) -> LbError {
    let text = reply.trim();
    known_error(text, backend).unwrap_or_else(|| {
        if text.is_empty() {
            LbError::Protocol(format!("empty answer to `{cmd}`"))
        } else {
            LbError::Protocol(format!(
                "unexpected answer to `{cmd}`: {}",
                first_line(text)
            ))
        }
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Parses `show stat <backend> 4 -1` (CSV). Columns are found by header name, since their
/// number grows between HAProxy versions; only `pxname`, `svname` and `status` are required.
pub fn parse_show_stat(reply: &str, backend: &str) -> Result<Vec<StatRow>, LbError> {
    let mut lines = reply.lines();
    let header = match lines.next().and_then(|l| l.strip_prefix("# ")) {
        Some(header) => split_csv(header),
        None => return Err(read_failure(reply, backend, "show stat")),
    };
    let col = |name: &str| header.iter().position(|h| h == name);
    let required = |name: &str| {
        col(name).ok_or_else(|| LbError::Protocol(format!("`show stat` has no `{name}` column")))
    };
    let (px, sv, status) = (
        required("pxname")?,
        required("svname")?,
        required("status")?,
    );
    let (scur, weight, check) = (col("scur"), col("weight"), col("check_status"));

    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields = split_csv(line);
        let field = |i: usize| fields.get(i).map(String::as_str).unwrap_or_default();
        let server = field(sv);
        // Type 4 asks for servers only; skip aggregate rows anyway if a proxy sends them.
        if field(px) != backend || matches!(server, "FRONTEND" | "BACKEND") {
            continue;
        }
        rows.push(StatRow {
            backend: field(px).to_string(),
            server: server.to_string(),
            status: field(status).to_string(),
            sessions: scur.and_then(|i| field(i).parse().ok()),
            weight: weight.and_then(|i| field(i).parse().ok()),
            check_status: check.and_then(|i| {
                let text = field(i).trim_start_matches("* ").trim();
                (!text.is_empty()).then(|| text.to_string())
            }),
        });
    }
    Ok(rows)
}

/// Parses `show servers state <backend>`: a version line (`1`), a `# `-header, then
/// space-separated rows. Columns are found by header name.
pub fn parse_servers_state(reply: &str, backend: &str) -> Result<Vec<ServerState>, LbError> {
    let mut lines = reply.lines();
    if lines.next().map(str::trim) != Some("1") {
        return Err(match read_failure(reply, backend, "show servers state") {
            LbError::Protocol(_) if reply.trim().starts_with(|c: char| c.is_ascii_digit()) => {
                LbError::Protocol(format!(
                    "`show servers state` format version {:?} is not supported (expected 1)",
                    first_line(reply.trim())
                ))
            }
            other => other,
        });
    }
    let header: Vec<&str> = match lines.next().and_then(|l| l.strip_prefix("# ")) {
        Some(header) => header.split_whitespace().collect(),
        None => {
            return Err(LbError::Protocol(
                "`show servers state` has no header line".into(),
            ))
        }
    };
    let required = |name: &str| {
        header.iter().position(|h| *h == name).ok_or_else(|| {
            LbError::Protocol(format!("`show servers state` has no `{name}` column"))
        })
    };
    let be = required("be_name")?;
    let srv = required("srv_name")?;
    let op = required("srv_op_state")?;
    let admin = required("srv_admin_state")?;
    let uweight = header.iter().position(|h| *h == "srv_uweight");

    let mut states = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let field = |i: usize| fields.get(i).copied().unwrap_or_default();
        if field(be) != backend {
            continue;
        }
        let number = |i: usize, what: &str| {
            field(i).parse::<u32>().map_err(|_| {
                LbError::Protocol(format!(
                    "`show servers state`: {what} of {} is {:?}, not a number",
                    field(srv),
                    field(i)
                ))
            })
        };
        states.push(ServerState {
            backend: field(be).to_string(),
            server: field(srv).to_string(),
            op_state: u8::try_from(number(op, "srv_op_state")?).unwrap_or(u8::MAX),
            admin_state: number(admin, "srv_admin_state")?,
            user_weight: uweight.and_then(|i| field(i).parse().ok()),
        });
    }
    Ok(states)
}

/// Splits one line of HAProxy's CSV: fields may be double-quoted, with `""` for a quote, when
/// they contain a comma (check descriptions can).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', true) => quoted = false,
            ('"', false) if field.is_empty() => quoted = true,
            (',', false) => fields.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    // HAProxy ends every row with a comma; a last non-empty field means it did not.
    if !field.is_empty() {
        fields.push(field);
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from HAProxy 2.6.12 (`show stat be_cluster 4 -1`): node1 and node2 failing their
    // checks, node3 without checks and drained.
    const STAT_HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,\n";
    const STAT_ROWS: &str = "be_cluster,node1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,4,4,,1,3,1,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,2,0,,,,127.0.0.1:19081,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n\
be_cluster,node2,0,0,3,0,,0,0,0,,0,,0,0,0,0,UP 1/2,100,1,0,1,1,4,4,,1,3,2,,0,,2,0,,0,* L7OK,200,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,OK,,0,0,0,0,,,,Layer7 check passed,,2,2,0,,,,127.0.0.1:19082,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n\
be_cluster,node3,0,0,0,0,,0,0,0,,0,,0,0,0,0,DRAIN,1,1,0,,,0,,,1,3,3,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:19083,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,\n\n";

    // Captured from HAProxy 2.6.12 (`show servers state be_cluster`): node3 in maint at weight 50.
    const STATE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n\
3 be_cluster 1 node1 127.0.0.1 0 0 1 1 5 8 2 0 6 0 0 0 - 19081 - 0 0 - - 0\n\
3 be_cluster 2 node2 127.0.0.1 2 8 100 100 0 15 3 3 6 0 0 0 - 18082 - 0 0 - - 0\n\
3 be_cluster 3 node3 127.0.0.1 0 1 50 1 1 1 0 0 0 0 0 0 - 19083 - 0 0 - - 0\n\n";

    #[test]
    fn show_stat_rows() {
        let rows = parse_show_stat(&format!("{STAT_HEADER}{STAT_ROWS}"), "be_cluster").unwrap();
        assert_eq!(
            rows,
            vec![
                StatRow {
                    backend: "be_cluster".into(),
                    server: "node1".into(),
                    status: "DOWN".into(),
                    sessions: Some(0),
                    weight: Some(1),
                    check_status: Some("L4CON".into()),
                },
                StatRow {
                    backend: "be_cluster".into(),
                    server: "node2".into(),
                    status: "UP 1/2".into(),
                    sessions: Some(3),
                    weight: Some(100),
                    check_status: Some("L7OK".into()),
                },
                StatRow {
                    backend: "be_cluster".into(),
                    server: "node3".into(),
                    status: "DRAIN".into(),
                    sessions: Some(0),
                    weight: Some(1),
                    check_status: None,
                },
            ]
        );
    }

    #[test]
    fn show_stat_maps_columns_by_name() {
        let reply =
            "# svname,pxname,status,scur,\nn1,be,MAINT,7,\nBACKEND,be,UP,7,\nn2,other,UP,0,\n\n";
        let rows = parse_show_stat(reply, "be").unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].server, "n1");
        assert_eq!(rows[0].status, "MAINT");
        assert_eq!(rows[0].sessions, Some(7));
        assert_eq!(rows[0].weight, None);
    }

    #[test]
    fn show_stat_quoted_fields() {
        assert_eq!(
            split_csv(r#"be,n1,"a, ""b""",,"#),
            vec!["be", "n1", r#"a, "b""#, ""]
        );
    }

    #[test]
    fn show_stat_errors() {
        assert!(matches!(
            parse_show_stat("No such proxy.\n\n", "nosuch"),
            Err(LbError::UnknownBackend(b)) if b == "nosuch"
        ));
        assert!(matches!(
            parse_show_stat("\nPermission denied\n\n", "be"),
            Err(LbError::Refused(m)) if m == NEEDS_ADMIN
        ));
        assert!(matches!(
            parse_show_stat("", "be"),
            Err(LbError::Protocol(_))
        ));
        assert!(matches!(
            parse_show_stat("# pxname,svname,\nbe,n1,\n", "be"),
            Err(LbError::Protocol(m)) if m.contains("status")
        ));
    }

    #[test]
    fn servers_state_rows() {
        let states = parse_servers_state(STATE, "be_cluster").unwrap();
        let summary: Vec<_> = states
            .iter()
            .map(|s| (s.server.as_str(), s.op_state, s.admin_state, s.user_weight))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("node1", 0, 0, Some(1)),
                ("node2", 2, 8, Some(100)),
                ("node3", 0, 1, Some(50)),
            ]
        );
        assert!(states.iter().all(|s| s.backend == "be_cluster"));
    }

    #[test]
    fn servers_state_errors() {
        assert!(matches!(
            parse_servers_state("Can't find backend.\n\n", "nosuch"),
            Err(LbError::UnknownBackend(b)) if b == "nosuch"
        ));
        assert!(matches!(
            parse_servers_state("2\n# be_name\n", "be"),
            Err(LbError::Protocol(m)) if m.contains("version")
        ));
        assert!(matches!(
            parse_servers_state("1\n# be_name srv_name\n", "be"),
            Err(LbError::Protocol(m)) if m.contains("srv_op_state")
        ));
        let garbage = "1\n# be_name srv_name srv_op_state srv_admin_state\nbe n1 2 x\n";
        assert!(matches!(
            parse_servers_state(garbage, "be"),
            Err(LbError::Protocol(m)) if m.contains("srv_admin_state")
        ));
        // A short row is an error, not a panic.
        assert!(parse_servers_state(
            "1\n# be_name srv_name srv_op_state srv_admin_state\nbe n1\n",
            "be"
        )
        .is_err());
    }

    #[test]
    fn admin_state_bits() {
        assert_eq!(membership_from_admin(0), Membership::Ready);
        assert_eq!(membership_from_admin(0x40), Membership::Ready);
        assert_eq!(membership_from_admin(8), Membership::Drain);
        assert_eq!(membership_from_admin(0x10), Membership::Drain);
        assert_eq!(membership_from_admin(1), Membership::Maint);
        assert_eq!(membership_from_admin(0x02), Membership::Maint);
        assert_eq!(membership_from_admin(0x04), Membership::Maint);
        assert_eq!(membership_from_admin(0x20), Membership::Maint);
        assert_eq!(membership_from_admin(1 | 8), Membership::Maint);
    }

    #[test]
    fn mutating_replies() {
        assert!(command_outcome("\n", "be", "n1").is_ok());
        assert!(command_outcome("", "be", "n1").is_ok());
        assert!(matches!(
            command_outcome("No such server.\n\n", "be", "n9"),
            Err(LbError::UnknownServer(s)) if s == "n9"
        ));
        assert!(matches!(
            command_outcome("No such backend.\n\n", "nobe", "n1"),
            Err(LbError::UnknownBackend(b)) if b == "nobe"
        ));
        assert!(matches!(
            command_outcome("\nPermission denied\n\n", "be", "n1"),
            Err(LbError::Refused(m)) if m == NEEDS_ADMIN
        ));
        assert!(matches!(
            command_outcome("Permission denied\n\n", "be", "n1"),
            Err(LbError::Refused(_))
        ));
        assert!(matches!(
            command_outcome("Empty weight string empty or preceded by garbage\n", "be", "n1"),
            Err(LbError::Protocol(m)) if m == "Empty weight string empty or preceded by garbage"
        ));
        assert!(matches!(
            command_outcome(
                "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n",
                "be",
                "n1"
            ),
            Err(LbError::Protocol(_))
        ));
    }

    #[test]
    fn names() {
        for ok in ["node1", "be_cluster", "db-2.eu:a"] {
            assert!(check_name("server", ok).is_ok(), "{ok}");
        }
        for bad in ["", "n1;shutdown sessions", "a b", "n1\n", "be/n1"] {
            assert!(check_name("server", bad).is_err(), "{bad:?}");
        }
    }
}
