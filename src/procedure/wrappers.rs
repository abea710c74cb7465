//! Commands that run another command written in their own argv — `sudo`, `doas`, `env`,
//! `nice`, `nohup`, `setsid`, `timeout`, `stdbuf`, `ionice`, `chroot`, `time`, `runuser -u`,
//! and the container runners' exec (`kubectl exec POD -- CMD`, `docker exec CONTAINER CMD`) —
//! and `su`, whose `-c` hands a script to the user's shell. Each one's options are read as the
//! program reads them, so that the command it runs is found, and with it a shell script
//! (`sh -c SCRIPT`) or an ssh remote command whose values must be quoted (`shell`).
//!
//! All of these stop reading options at their first operand (getopt's leading `+`), so an
//! option word after the wrapped command belongs to that command.

/// The last path component: `/usr/bin/sudo` runs `sudo`.
pub fn program(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// How a wrapper's argv reads up to the command it runs.
struct Opts {
    /// Short options that take an argument (`-u USER`, or attached: `-uUSER`).
    short_arg: &'static str,
    /// Long options that take an argument when not written `--opt=VALUE`.
    long_arg: &'static [&'static str],
    /// `NAME=VALUE` words may come before the command (`env`, `sudo`).
    assignments: bool,
    /// Operands before the command (`timeout DURATION`, `chroot NEWROOT`, `docker exec
    /// CONTAINER`).
    operands: usize,
}

// sudo 1.9 (`src/parse_args.c`, short options "+Aa:BbC:c:D:Eeg:Hh::iKklNnPp:R:r:SsT:t:U:u:Vv").
const SUDO: Opts = Opts {
    short_arg: "acCDgpRrTtUu",
    long_arg: &[
        "--auth-type",
        "--close-from",
        "--chdir",
        "--group",
        "--prompt",
        "--chroot",
        "--role",
        "--type",
        "--command-timeout",
        "--other-user",
        "--user",
        "--login-class",
        "--host",
    ],
    assignments: true,
    operands: 0,
};
// OpenBSD doas(1): "+C:Lnsu:".
const DOAS: Opts = Opts {
    short_arg: "Cu",
    long_arg: &[],
    assignments: false,
    operands: 0,
};
// GNU coreutils 9 env(1): "+0C:iS:u:v" (`-S STRING` splits a string: its words are not seen).
const ENV: Opts = Opts {
    short_arg: "CSu",
    long_arg: &["--chdir", "--split-string", "--unset"],
    assignments: true,
    operands: 0,
};
// coreutils nice(1): `-n N`, `--adjustment N`, the old `-N`.
const NICE: Opts = Opts {
    short_arg: "n",
    long_arg: &["--adjustment"],
    assignments: false,
    operands: 0,
};
// coreutils nohup(1), util-linux setsid(1) ("+Vhcfw"): no option takes an argument.
const PLAIN: Opts = Opts {
    short_arg: "",
    long_arg: &[],
    assignments: false,
    operands: 0,
};
// coreutils timeout(1): "+k:s:v", then DURATION.
const TIMEOUT: Opts = Opts {
    short_arg: "ks",
    long_arg: &["--kill-after", "--signal"],
    assignments: false,
    operands: 1,
};
// coreutils stdbuf(1): "+i:o:e:".
const STDBUF: Opts = Opts {
    short_arg: "ioe",
    long_arg: &["--input", "--output", "--error"],
    assignments: false,
    operands: 0,
};
// util-linux ionice(1): "+c:n:p:P:tu:Vh" (with -p/-P/-u it runs nothing: no operand follows).
const IONICE: Opts = Opts {
    short_arg: "cnpPu",
    long_arg: &["--class", "--classdata", "--pid", "--pgid", "--uid"],
    assignments: false,
    operands: 0,
};
// coreutils chroot(1): long options only, then NEWROOT.
const CHROOT: Opts = Opts {
    short_arg: "",
    long_arg: &["--groups", "--userspec"],
    assignments: false,
    operands: 1,
};
// GNU time(1): "+af:o:pqvV".
const TIME: Opts = Opts {
    short_arg: "fo",
    long_arg: &["--format", "--output"],
    assignments: false,
    operands: 0,
};
// util-linux runuser(1) with `-u USER`: "+c:fg:G:lmpPs:u:hVw:" runs the command as given.
const RUNUSER: Opts = Opts {
    short_arg: "cgGsuw",
    long_arg: &[
        "--command",
        "--group",
        "--supp-group",
        "--shell",
        "--user",
        "--whitelist-environment",
    ],
    assignments: false,
    operands: 0,
};
// `docker exec` (docker/cli `cli/command/container/exec.go`, flags not interspersed), podman
// and nerdctl alike, `docker compose exec` (`--index N`): then CONTAINER (or SERVICE).
const CONTAINER_EXEC: Opts = Opts {
    short_arg: "euw",
    long_arg: &[
        "--env",
        "--env-file",
        "--user",
        "--workdir",
        "--detach-keys",
        "--index",
        "--preserve-fds",
    ],
    assignments: false,
    operands: 1,
};

/// Whether the short option word `-xu` (one or more options) leaves an argument to the next
/// word: its first option that takes one is its last letter (`-u root`, not `-uroot`).
fn cluster_wants_next(word: &str, short_arg: &str) -> bool {
    for (i, c) in word.char_indices().skip(1) {
        if short_arg.contains(c) {
            return i + c.len_utf8() == word.len();
        }
    }
    false
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && !name.starts_with(|c: char| c.is_ascii_digit())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Read `opts` from `argv[from]` on: the index of the command's first word, None if none.
fn command_after(argv: &[String], from: usize, opts: &Opts) -> Option<usize> {
    let (mut j, mut ended, mut operands) = (from, false, opts.operands);
    loop {
        let w = argv.get(j)?.as_str();
        if !ended && w == "--" {
            ended = true;
        } else if !ended && w.starts_with("--") {
            if opts.long_arg.contains(&w) {
                j += 1;
            }
        } else if !ended && w.len() > 1 && w.starts_with('-') {
            if cluster_wants_next(w, opts.short_arg) {
                j += 1;
            }
        } else if opts.assignments && is_assignment(w) {
        } else if operands > 0 {
            operands -= 1;
        } else {
            return Some(j);
        }
        j += 1;
    }
}

/// What `argv[i]` is: a wrapper, and then where the command it runs starts (None: it runs
/// none); or not a wrapper.
fn wrapped(argv: &[String], i: usize) -> Result<Option<usize>, NotWrapper> {
    let name = program(&argv[i]);
    let opts = match name {
        "sudo" => &SUDO,
        "doas" => &DOAS,
        "env" => &ENV,
        "nice" => &NICE,
        "nohup" | "setsid" => &PLAIN,
        "timeout" => &TIMEOUT,
        "stdbuf" => &STDBUF,
        "ionice" => &IONICE,
        "chroot" => &CHROOT,
        "time" => &TIME,
        // Without `-u`, runuser is su: a script for the shell (`su_script`).
        "runuser" if has_user_flag(&argv[i + 1..]) => &RUNUSER,
        // `kubectl exec POD -- CMD...` (also `debug`, `run`): the words after `--`
        // (kubectl's `ArgsLenAtDash`). The old form without `--` is not recognised.
        "kubectl" | "oc" => {
            return Ok(argv[i + 1..]
                .iter()
                .position(|w| w == "--")
                .map(|p| i + 1 + p + 1)
                .filter(|c| *c < argv.len()))
        }
        "docker" | "podman" | "nerdctl" | "docker-compose" => {
            // Global options before the subcommand take no part: find `exec` itself.
            let Some(p) = argv[i + 1..].iter().position(|w| w == "exec") else {
                return Err(NotWrapper);
            };
            return Ok(command_after(argv, i + 1 + p + 1, &CONTAINER_EXEC));
        }
        _ => return Err(NotWrapper),
    };
    Ok(command_after(argv, i + 1, opts))
}

fn has_user_flag(args: &[String]) -> bool {
    args.iter()
        .take_while(|w| w.starts_with('-') && *w != "--")
        .any(|w| w == "--user" || w.starts_with("--user=") || cluster_has(w, 'u'))
}

fn cluster_has(word: &str, opt: char) -> bool {
    !word.starts_with("--") && word.len() > 1 && word[1..].starts_with(|c: char| c != '-') && {
        // Up to the first option that takes an argument (the rest is its value).
        let mut found = false;
        for c in word.chars().skip(1) {
            if c == opt {
                found = true;
                break;
            }
            if RUNUSER.short_arg.contains(c) {
                break;
            }
        }
        found
    }
}

struct NotWrapper;

/// The index of the command `argv` runs once every wrapper at its head is read past (0 when
/// `argv[0]` is no wrapper): `sudo -u pg env X=1 sh -c S` runs `sh` (4). None when a wrapper
/// runs no command.
pub fn command_index(argv: &[String]) -> Option<usize> {
    let mut i = 0;
    while i < argv.len() {
        match wrapped(argv, i) {
            Err(NotWrapper) => return Some(i),
            // Always past `i`: every wrapper reads at least its own name.
            Ok(Some(next)) => i = next,
            Ok(None) => return None,
        }
    }
    None
}

/// `su [options] [-] [user] -c SCRIPT` (also `--command SCRIPT`, `--session-command SCRIPT`,
/// `-lc SCRIPT`), `runuser` without `-u` alike: the index of SCRIPT, which the user's shell
/// runs with `-c` (util-linux su(1); its getopt permutes, so `-c` may follow the user).
pub fn su_script(argv: &[String], at: usize) -> Option<usize> {
    if !matches!(program(argv.get(at)?), "su" | "runuser") {
        return None;
    }
    const SHORT_ARG: &str = "cgGsw";
    let mut j = at + 1;
    while let Some(w) = argv.get(j) {
        let w = w.as_str();
        if w == "--" {
            // The words after `--` go to the user's shell (su(1): "an argument of -c will
            // cause the next argument to be treated as a command"), after the user if it
            // comes there (`su -- pg -c SCRIPT`): take a `-c` in either place as its script.
            return (j + 1..argv.len().min(j + 3))
                .find(|&k| argv[k] == "-c")
                .and_then(|k| (k + 1 < argv.len()).then_some(k + 1));
        }
        if w == "--command" || w == "--session-command" {
            return (j + 1 < argv.len()).then_some(j + 1);
        }
        if w.starts_with("--") {
            if [
                "--group",
                "--supp-group",
                "--shell",
                "--whitelist-environment",
            ]
            .contains(&w)
            {
                j += 1;
            }
        } else if w.len() > 1 && w.starts_with('-') && cluster_wants_next(w, SHORT_ARG) {
            if w.ends_with('c') {
                return (j + 1 < argv.len()).then_some(j + 1);
            }
            j += 1;
        }
        j += 1;
    }
    None
}

/// A word where su's script is attached to its option (`--command=SCRIPT`, `-cSCRIPT`): its
/// values cannot be quoted for the shell as a word of their own (`check` refuses templates
/// there). Given the word read so far.
pub fn su_attached_script(word: &str) -> bool {
    word.starts_with("--command=")
        || word.starts_with("--session-command=")
        || (word.len() > 2
            && word.starts_with('-')
            && !word.starts_with("--")
            && word[1..]
                .char_indices()
                .find(|(_, c)| "cgGsw".contains(*c))
                .is_some_and(|(i, c)| c == 'c' && i + 2 < word.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_wrapped_command_is_found_past_each_wrapper() {
        for (argv, at) in [
            (&["sh", "-c", "x"][..], Some(0)),
            (&["sudo", "sh", "-c", "x"], Some(1)),
            (&["sudo", "-u", "pg", "-E", "sh", "-c", "x"], Some(4)),
            (&["sudo", "-Eu", "pg", "--", "sh"], Some(4)),
            (&["sudo", "--user=pg", "A=1", "sh"], Some(3)),
            (&["/usr/bin/sudo", "-l"], None),
            (&["doas", "-u", "pg", "sh"], Some(3)),
            (&["env", "X=1", "Y=2", "sh", "-c", "x"], Some(3)),
            (&["env", "-i", "-u", "HOME", "--chdir", "/", "sh"], Some(6)),
            (&["env"], None),
            (&["nice", "-n", "5", "sh"], Some(3)),
            (&["nice", "-5", "sh"], Some(2)),
            (&["nohup", "setsid", "-f", "sh"], Some(3)),
            (&["timeout", "-s", "KILL", "30s", "sh"], Some(4)),
            (&["timeout", "--foreground", "30", "sh"], Some(3)),
            (&["stdbuf", "-oL", "-e", "0", "sh"], Some(4)),
            (&["ionice", "-c", "3", "sh", "-c", "x"], Some(3)),
            (&["chroot", "--userspec=a:b", "/srv", "sh"], Some(3)),
            (&["time", "-p", "sh"], Some(2)),
            (&["runuser", "-u", "pg", "--", "sh", "-c", "x"], Some(4)),
            (&["runuser", "pg", "-c", "x"], Some(0)),
            (
                &[
                    "kubectl", "-n", "db", "exec", "pg-0", "-c", "pg", "--", "sh",
                ],
                Some(8),
            ),
            (&["kubectl", "exec", "pg-0"], None),
            (&["oc", "exec", "pg-0", "--", "bash", "-lc", "x"], Some(4)),
            (
                &["docker", "exec", "-u", "root", "-it", "c1", "sh", "-c", "x"],
                Some(6),
            ),
            (&["docker", "--context", "x", "exec", "c1", "sh"], Some(5)),
            (&["docker", "compose", "exec", "-T", "db", "sh"], Some(5)),
            (&["docker", "ps"], Some(0)),
            (
                &["sudo", "timeout", "10", "env", "A=1", "nice", "sh"],
                Some(6),
            ),
            (&["sudo", "-u", "deploy", "ssh", "h", "ls"], Some(3)),
        ] {
            assert_eq!(command_index(&v(argv)), at, "{argv:?}");
        }
    }

    #[test]
    fn su_hands_its_c_argument_to_the_shell() {
        for (argv, at) in [
            (&["su", "-c", "x"][..], Some(2)),
            (&["su", "-", "postgres", "-c", "x"], Some(4)),
            (&["su", "postgres", "--command", "x"], Some(3)),
            (&["su", "-s", "/bin/bash", "pg", "-lc", "x"], Some(5)),
            (&["su", "-s", "-c", "pg"], None),
            (&["runuser", "-l", "pg", "-c", "x"], Some(4)),
            (&["su", "pg"], None),
            (&["su", "pg", "--", "-c", "x"], Some(4)),
            (&["su", "--", "pg", "-c", "x"], Some(4)),
            (&["su", "pg", "--", "-c"], None),
            (&["sudo", "sh"], None),
        ] {
            assert_eq!(su_script(&v(argv), 0), at, "{argv:?}");
        }
        assert!(su_attached_script("--command=rm "));
        assert!(su_attached_script("-crm"));
        assert!(su_attached_script("-lcrm"));
        assert!(!su_attached_script("-c"));
        assert!(!su_attached_script("-lc"));
        assert!(!su_attached_script("-s/bin/sh"));
    }
}
