//! The templated strings of an action, visited in one place so that checking and expansion agree
//! on what is templated: argv items, env values, stdin, cwd, url, header values, body, string values of
//! `expect_json` (not its keys), `expect_text`, lb node, wait nodes and inline checks, manual text, call args.

use std::collections::BTreeMap;

use super::model::{Action, Check, HttpSpec, JsonExpect, WaitSpec};

/// Rebuild `action` with every templated string passed through `f(path, value)`, where `path` is
/// relative to the action (`argv[0]`, `headers.Authorization`). Stops at the first error.
pub fn map_action<E>(
    action: &Action,
    f: &mut impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<Action, E> {
    Ok(match action {
        Action::Manual { text } => Action::Manual {
            text: f("text", text)?,
        },
        Action::Run {
            argv,
            env,
            stdin,
            cwd,
            timeout_secs,
            expect_exit,
        } => Action::Run {
            argv: map_list("argv", argv, f)?,
            env: map_values("env", env, f)?,
            stdin: stdin.as_ref().map(|s| f("stdin", s)).transpose()?,
            cwd: cwd.as_ref().map(|c| f("cwd", c)).transpose()?,
            timeout_secs: *timeout_secs,
            expect_exit: *expect_exit,
        },
        Action::Http(h) => Action::Http(map_http("", h, f)?),
        Action::Lb {
            node,
            state,
            weight,
        } => Action::Lb {
            node: f("node", node)?,
            state: *state,
            weight: *weight,
        },
        Action::Wait(w) => Action::Wait(WaitSpec {
            probe: w.probe.clone(),
            check: w.check.as_ref().map(|c| map_check(c, f)).transpose()?,
            nodes: w.nodes.as_ref().map(|n| f("nodes", n)).transpose()?,
            ..w.clone()
        }),
        Action::Call { name, args } => Action::Call {
            name: name.clone(),
            args: map_values("args", args, f)?,
        },
    })
}

/// The HTTP specs of an action (its own, or its gate's inline check), each with the prefix of
/// its fields relative to the action (`""`, `"check."`).
pub fn http_specs(action: &Action) -> Vec<(&'static str, &HttpSpec)> {
    match action {
        Action::Http(h) => vec![("", h)],
        Action::Wait(WaitSpec {
            check: Some(Check::Http(h)),
            ..
        }) => vec![("check.", h)],
        _ => Vec::new(),
    }
}

/// Visit every templated string without rebuilding (for checks that collect all problems).
pub fn visit_action(action: &Action, f: &mut impl FnMut(&str, &str)) {
    let _ = map_action::<()>(action, &mut |p, v| {
        f(p, v);
        Ok(v.to_string())
    });
}

/// Visit every templated string of a check (a target probe or an inline gate check), with paths
/// relative to the check (`url`, `argv[0]`).
pub fn visit_check(check: &Check, f: &mut impl FnMut(&str, &str)) {
    let _ = map_check::<()>(check, &mut |p, v| {
        f(p.strip_prefix("check.").unwrap_or(p), v);
        Ok(v.to_string())
    });
}

pub fn map_check<E>(
    check: &Check,
    f: &mut impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<Check, E> {
    Ok(match check {
        Check::Http(h) => Check::Http(map_http("check.", h, f)?),
        Check::Tcp {
            address,
            timeout_ms,
        } => Check::Tcp {
            address: f("check.address", address)?,
            timeout_ms: *timeout_ms,
        },
        Check::Run {
            argv,
            env,
            stdin,
            timeout_secs,
            expect_exit,
        } => Check::Run {
            argv: map_list("check.argv", argv, f)?,
            env: map_values("check.env", env, f)?,
            stdin: stdin.as_ref().map(|s| f("check.stdin", s)).transpose()?,
            timeout_secs: *timeout_secs,
            expect_exit: *expect_exit,
        },
    })
}

fn map_http<E>(
    prefix: &str,
    h: &HttpSpec,
    f: &mut impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<HttpSpec, E> {
    let mut expect_json = BTreeMap::new();
    for (k, v) in &h.expect_json {
        let v = match v {
            serde_json::Value::String(s) => {
                serde_json::Value::String(f(&format!("{prefix}expect_json.{k}"), s)?)
            }
            other => other.clone(),
        };
        expect_json.insert(k.clone(), v);
    }
    let mut expect = Vec::with_capacity(h.expect.len());
    for (i, e) in h.expect.iter().enumerate() {
        let at = format!("{prefix}expect[{i}]");
        let value = match &e.value {
            Some(serde_json::Value::String(s)) => {
                Some(serde_json::Value::String(f(&format!("{at}.value"), s)?))
            }
            Some(serde_json::Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for (j, item) in items.iter().enumerate() {
                    out.push(match item {
                        serde_json::Value::String(s) => {
                            serde_json::Value::String(f(&format!("{at}.value[{j}]"), s)?)
                        }
                        other => other.clone(),
                    });
                }
                Some(serde_json::Value::Array(out))
            }
            other => other.clone(),
        };
        expect.push(JsonExpect {
            path: fill_quoted(&format!("{at}.path"), &e.path, f)?,
            value,
            ..e.clone()
        });
    }
    Ok(HttpSpec {
        method: h.method.clone(),
        url: f(&format!("{prefix}url"), &h.url)?,
        headers: map_values(&format!("{prefix}headers"), &h.headers, f)?,
        body: h
            .body
            .as_ref()
            .map(|b| f(&format!("{prefix}body"), b))
            .transpose()?,
        expect_status: h.expect_status.clone(),
        wait_on: h.wait_on.clone(),
        fail_on: h.fail_on.clone(),
        expect_json,
        expect_text: h
            .expect_text
            .as_ref()
            .map(|t| f(&format!("{prefix}expect_text"), t))
            .transpose()?,
        expect,
        timeout_secs: h.timeout_secs,
    })
}

/// A JSONPath with its `${name}` templates filled in as JSON string literals, so a value is
/// data in the query, never syntax: `$[?@.name == ${node.name}]` -> `$[?@.name == "node1"]`,
/// and a name holding `"` or `]` cannot change what the query means. A template `f` leaves as
/// written (a node variable filled in later, at run time) stays as written, to be quoted then.
fn fill_quoted<E>(
    path: &str,
    s: &str,
    f: &mut impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<String, E> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let placeholder = &rest[start..start + len + 1];
        let value = f(path, placeholder)?;
        if value == placeholder {
            out.push_str(placeholder);
        } else {
            out.push_str(&serde_json::Value::String(value).to_string());
        }
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn map_list<E>(
    key: &str,
    items: &[String],
    f: &mut impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<Vec<String>, E> {
    items
        .iter()
        .enumerate()
        .map(|(i, s)| f(&format!("{key}[{i}]"), s))
        .collect()
}

fn map_values<E>(
    key: &str,
    map: &BTreeMap<String, String>,
    f: &mut impl FnMut(&str, &str) -> Result<String, E>,
) -> Result<BTreeMap<String, String>, E> {
    map.iter()
        .map(|(k, v)| Ok((k.clone(), f(&format!("{key}.{k}"), v)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_templated_strings_only() {
        let a: Action = toml::from_str(
            r#"
            kind = "http"
            method = "POST"
            url = "${node.url}/v1"
            headers = { Authorization = "Bearer ${secret.t}" }
            expect_json = { "/a" = "${x}", "/n" = 3 }
            "#,
        )
        .unwrap();
        let mut seen = Vec::new();
        visit_action(&a, &mut |p, v| seen.push(format!("{p}={v}")));
        assert_eq!(
            seen,
            vec![
                "expect_json./a=${x}",
                "url=${node.url}/v1",
                "headers.Authorization=Bearer ${secret.t}",
            ]
        );
    }
}

#[cfg(test)]
mod quoting_tests {
    use super::*;

    #[test]
    fn values_go_into_a_jsonpath_as_json_strings() {
        let a: Action = toml::from_str(
            r#"
            kind = "http"
            url = "http://h/_cat/nodes?format=json"
            expect = [{ path = '$[?@.name == ${node.name}].version', value = "${to_version}" }]
            "#,
        )
        .unwrap();
        // A name that tries to close the string and add a clause stays one string.
        let filled = map_action::<()>(&a, &mut |_, v| {
            Ok(v.replace("${node.name}", r#"es1" || @.name != "x"#)
                .replace("${to_version}", "8.15.0"))
        })
        .unwrap();
        let Action::Http(h) = filled else {
            unreachable!()
        };
        assert_eq!(
            h.expect[0].path,
            r#"$[?@.name == "es1\" || @.name != \"x"].version"#
        );
        assert_eq!(h.expect[0].value, Some(serde_json::json!("8.15.0")));
        // Left as written (a node variable for run time): still a template, quoted later.
        let kept = map_action::<()>(&a, &mut |_, v| Ok(v.to_string())).unwrap();
        let Action::Http(h) = kept else {
            unreachable!()
        };
        assert_eq!(h.expect[0].path, "$[?@.name == ${node.name}].version");
    }
}
