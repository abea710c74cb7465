//! Late string substitution in actions and checks: `${node.*}` for checks that run per node at
//! run time (probes, gates over many nodes), and `${secret.*}`, which is resolved only in the
//! copy of an action that is about to run and never in anything that is journaled.

use std::collections::BTreeMap;

use crate::procedure::model::{Action, Check, HttpSpec, WaitSpec};
use crate::target::Node;

/// Apply `f` to every templated string of an HTTP spec.
fn map_http(h: &HttpSpec, f: &dyn Fn(&str) -> String) -> HttpSpec {
    HttpSpec {
        method: h.method.clone(),
        url: f(&h.url),
        headers: map_map(&h.headers, f),
        body: h.body.as_deref().map(f),
        expect_status: h.expect_status.clone(),
        expect_json: h
            .expect_json
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => serde_json::Value::String(f(s)),
                    other => other.clone(),
                };
                (k.clone(), v)
            })
            .collect(),
        timeout_secs: h.timeout_secs,
    }
}

fn map_map(m: &BTreeMap<String, String>, f: &dyn Fn(&str) -> String) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), f(v))).collect()
}

pub fn map_check(c: &Check, f: &dyn Fn(&str) -> String) -> Check {
    match c {
        Check::Http(h) => Check::Http(map_http(h, f)),
        Check::Tcp {
            address,
            timeout_ms,
        } => Check::Tcp {
            address: f(address),
            timeout_ms: *timeout_ms,
        },
        Check::Run {
            argv,
            env,
            timeout_secs,
            expect_exit,
        } => Check::Run {
            argv: argv.iter().map(|a| f(a)).collect(),
            env: map_map(env, f),
            timeout_secs: *timeout_secs,
            expect_exit: *expect_exit,
        },
    }
}

pub fn map_action(a: &Action, f: &dyn Fn(&str) -> String) -> Action {
    match a {
        Action::Manual { text } => Action::Manual { text: f(text) },
        Action::Run {
            argv,
            env,
            cwd,
            timeout_secs,
            expect_exit,
        } => Action::Run {
            argv: argv.iter().map(|a| f(a)).collect(),
            env: map_map(env, f),
            cwd: cwd.as_deref().map(f),
            timeout_secs: *timeout_secs,
            expect_exit: *expect_exit,
        },
        Action::Http(h) => Action::Http(map_http(h, f)),
        Action::Lb {
            node,
            state,
            weight,
        } => Action::Lb {
            node: f(node),
            state: *state,
            weight: *weight,
        },
        Action::Wait(w) => Action::Wait(WaitSpec {
            probe: w.probe.clone(),
            check: w.check.as_ref().map(|c| map_check(c, f)),
            nodes: w.nodes.as_deref().map(f),
            stable_secs: w.stable_secs,
            timeout_secs: w.timeout_secs,
            interval_ms: w.interval_ms,
        }),
        Action::Call { name, args } => Action::Call {
            name: name.clone(),
            args: map_map(args, f),
        },
    }
}

/// The values `${node.KEY}` takes for one node.
pub fn node_vars(node: &Node, index: usize) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("node.name".into(), node.name.clone());
    v.insert("node.address".into(), node.address.clone());
    v.insert("node.host".into(), node.host().to_string());
    let port = node
        .address
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    v.insert("node.port".into(), port);
    v.insert("node.url".into(), format!("http://{}", node.address));
    v.insert("node.role".into(), node.role.clone().unwrap_or_default());
    v.insert("node.index".into(), (index + 1).to_string());
    for (k, val) in &node.tags {
        v.insert(format!("node.{k}"), val.clone());
    }
    v
}

/// Replace `${KEY}` for the keys given; leave every other placeholder as it is.
pub fn substitute(s: &str, vars: &BTreeMap<String, String>) -> String {
    if !s.contains("${") {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                let key = &after[..end];
                match vars.get(key) {
                    Some(val) => out.push_str(val),
                    None => {
                        out.push_str("${");
                        out.push_str(key);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Secrets resolved from the environment at session start.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, String>,
    missing: BTreeMap<String, String>,
}

impl Secrets {
    /// Read each declared secret from its environment variable.
    pub fn from_env(decl: &BTreeMap<String, crate::target::SecretSource>) -> Self {
        let mut s = Secrets::default();
        for (name, src) in decl {
            match std::env::var(&src.env) {
                Ok(v) if !v.is_empty() => {
                    s.values.insert(format!("secret.{name}"), v);
                }
                _ => {
                    s.missing.insert(name.clone(), src.env.clone());
                }
            }
        }
        s
    }

    /// Fill in secrets; an unset one is an error naming its variable (never its value).
    pub fn resolve_action(&self, a: &Action) -> Result<Action, String> {
        self.check_missing(&serde_json::to_string(a).unwrap_or_default())?;
        Ok(map_action(a, &|s| substitute(s, &self.values)))
    }

    pub fn resolve_check(&self, c: &Check) -> Result<Check, String> {
        self.check_missing(&serde_json::to_string(c).unwrap_or_default())?;
        Ok(map_check(c, &|s| substitute(s, &self.values)))
    }

    fn check_missing(&self, text: &str) -> Result<(), String> {
        for (name, env) in &self.missing {
            if text.contains(&format!("${{secret.{name}}}")) {
                return Err(format!(
                    "secret {name} is not available: set the environment variable {env}"
                ));
            }
        }
        Ok(())
    }

    /// Mask every secret value in text that leaves the engine (output, details, notes).
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in self.values.values() {
            // Very short values would mask ordinary text; secrets that short are not secrets.
            if v.len() >= 4 && out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "****");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitute_leaves_unknown_placeholders() {
        let mut v = BTreeMap::new();
        v.insert("node.url".to_string(), "http://h:1".to_string());
        assert_eq!(
            substitute("${node.url}/x?${secret.T}", &v),
            "http://h:1/x?${secret.T}"
        );
        assert_eq!(substitute("no vars", &v), "no vars");
        assert_eq!(substitute("torn ${node.url", &v), "torn ${node.url");
    }

    #[test]
    fn secrets_resolve_and_redact() {
        let mut s = Secrets::default();
        s.values
            .insert("secret.TOKEN".into(), "hunter2-very-secret".into());
        let a = Action::Run {
            argv: vec!["curl".into(), "-H".into(), "X: ${secret.TOKEN}".into()],
            env: BTreeMap::new(),
            cwd: None,
            timeout_secs: 5,
            expect_exit: 0,
        };
        let r = s.resolve_action(&a).unwrap();
        match r {
            Action::Run { argv, .. } => assert_eq!(argv[2], "X: hunter2-very-secret"),
            _ => unreachable!(),
        }
        assert_eq!(s.redact("token=hunter2-very-secret!"), "token=****!");
        s.missing.insert("PW".into(), "DB_PW".into());
        let b = Action::Manual {
            text: "use ${secret.PW}".into(),
        };
        let err = s.resolve_action(&b).unwrap_err();
        assert!(err.contains("DB_PW"));
    }
}
