//! Late string substitution in actions and checks: `${node.*}` for checks that run per node at
//! run time (probes, gates over many nodes), and `${secret.*}`, which is resolved only in the
//! copy of an action that is about to run and never in anything that is journaled.

use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;

use crate::procedure::model::{Action, Check};
use crate::procedure::strings;
use crate::target::Node;

/// `f` over every templated string of a check (the same strings `check` validates).
pub fn map_check(c: &Check, f: &dyn Fn(&str) -> String) -> Check {
    match strings::map_check::<Infallible>(c, &mut |_, v| Ok(f(v))) {
        Ok(c) => c,
        Err(never) => match never {},
    }
}

/// `f` over every templated string of an action.
pub fn map_action(a: &Action, f: &dyn Fn(&str) -> String) -> Action {
    match strings::map_action::<Infallible>(a, &mut |_, v| Ok(f(v))) {
        Ok(a) => a,
        Err(never) => match never {},
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
    /// Every environment variable a secret is read from, set or not.
    env_names: BTreeSet<String>,
}

impl Secrets {
    /// Read each declared secret from its environment variable.
    pub fn from_env(decl: &BTreeMap<String, crate::target::SecretSource>) -> Self {
        let mut s = Secrets::default();
        for (name, src) in decl {
            s.env_names.insert(src.env.clone());
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

    /// Take every secret's variable out of a child's environment. flightdeck's own environment
    /// holds them all (that is where they come from) and a child inherits it by default; a
    /// child gets a secret only through its action's own `env` (set after this) or `stdin`.
    pub fn scrub(&self, cmd: &mut tokio::process::Command) {
        for name in &self.env_names {
            cmd.env_remove(name);
        }
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
            stdin: None,
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
