//! `${name}` templates: filled in when a plan is made, except `${secret.NAME}`, which stays in the
//! plan as written and is resolved only when the action runs. `$${` writes a literal `${`.

use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown variable `{0}`")]
    Unknown(String),
    #[error("unknown secret `{0}` (the target declares no such secret)")]
    UnknownSecret(String),
    #[error("unterminated `${{` (a template is written `${{name}}`; `$${{` for a literal `${{`)")]
    Unterminated,
    #[error("empty `${{}}` template")]
    Empty,
}

/// The variables a string can see. Check time has no values for loop variables, only names, so a
/// scope can also accept whole prefixes (`node.` without a target: any tag may exist).
#[derive(Debug, Clone, Default)]
pub struct Scope {
    pub vars: BTreeMap<String, String>,
    /// Names starting with one of these are accepted with an empty value.
    pub open_prefixes: Vec<String>,
    /// Declared secrets; `None` accepts any (checking without a target).
    pub secrets: Option<BTreeSet<String>>,
    /// Names starting with one of these are left as written, for the engine to fill in at run
    /// time (`node.` in a gate's inline check that covers many nodes).
    pub late: Vec<String>,
}

impl Scope {
    pub fn get(&self, name: &str) -> Option<String> {
        if let Some(v) = self.vars.get(name) {
            return Some(v.clone());
        }
        self.open_prefixes
            .iter()
            .any(|p| name.starts_with(p.as_str()) && name.len() > p.len())
            .then(String::new)
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(name.into(), value.into());
    }

    /// This scope, plus `${node.*}` left for run time when no node is in scope: a wait gate's
    /// inline check outside a node loop runs once per selected node.
    pub fn with_late_nodes(&self) -> Scope {
        let mut s = self.clone();
        if !s.has("node.name") {
            s.late.push("node.".into());
        }
        s
    }

    fn is_late(&self, name: &str) -> bool {
        self.late
            .iter()
            .any(|p| name.starts_with(p.as_str()) && name.len() > p.len())
    }

    fn secret_ok(&self, name: &str) -> bool {
        self.secrets.as_ref().is_none_or(|s| s.contains(name))
    }
}

/// Fill in every `${name}` of `s` from `scope`.
pub fn render(s: &str, scope: &Scope) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or(TemplateError::Unterminated)?;
            let name = after[..end].trim();
            if name.is_empty() {
                return Err(TemplateError::Empty);
            }
            if let Some(secret) = name.strip_prefix("secret.") {
                if !scope.secret_ok(secret) {
                    return Err(TemplateError::UnknownSecret(secret.to_string()));
                }
                out.push_str(&tail[..end + 3]);
            } else if scope.is_late(name) {
                out.push_str(&tail[..end + 3]);
            } else {
                let v = scope
                    .get(name)
                    .ok_or_else(|| TemplateError::Unknown(name.to_string()))?;
                out.push_str(&v);
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Every name referenced by `s` (secrets included as `secret.NAME`).
pub fn references(s: &str) -> Result<Vec<String>, TemplateError> {
    let mut names = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or(TemplateError::Unterminated)?;
            names.push(after[..end].trim().to_string());
            rest = &after[end + 1..];
        } else {
            rest = &tail[1..];
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Scope {
        let mut s = Scope::default();
        s.set("node.name", "node2");
        s.set("to_version", "1.27.3");
        s.secrets = Some(["token".to_string()].into());
        s
    }

    #[test]
    fn fills_in_and_escapes() {
        let s = scope();
        assert_eq!(
            render("upgrade ${node.name} to ${ to_version }", &s).unwrap(),
            "upgrade node2 to 1.27.3"
        );
        assert_eq!(render("cost $5, $${HOME}", &s).unwrap(), "cost $5, ${HOME}");
    }

    #[test]
    fn leaves_secrets_as_written() {
        let s = scope();
        assert_eq!(
            render("Bearer ${secret.token}", &s).unwrap(),
            "Bearer ${secret.token}"
        );
        assert_eq!(
            render("${secret.nope}", &s),
            Err(TemplateError::UnknownSecret("nope".into()))
        );
        let open = Scope::default();
        assert!(render("${secret.anything}", &open).is_ok());
    }

    #[test]
    fn errors() {
        let s = scope();
        assert_eq!(
            render("${nodes.nam}", &s),
            Err(TemplateError::Unknown("nodes.nam".into()))
        );
        assert_eq!(render("${oops", &s), Err(TemplateError::Unterminated));
        assert_eq!(render("${}", &s), Err(TemplateError::Empty));
    }

    #[test]
    fn open_prefixes_accept_any_tag() {
        let s = Scope {
            open_prefixes: vec!["node.".into()],
            ..Scope::default()
        };
        assert!(render("${node.rack}", &s).is_ok());
        assert!(render("${node.}", &s).is_err());
        assert_eq!(
            references("${a} $${b} ${secret.c}").unwrap(),
            vec!["a", "secret.c"]
        );
    }
}
