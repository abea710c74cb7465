//! How the `session_started` line is written (journal format 2; format 3 then packs this
//! form's plan, nodes and target, see `packed`): plain JSON still, which `jq`
//! and `grep` read as they read any line, but without saying anything twice. The expanded
//! plan repeats each step of a node loop once per node, and the target repeated the node
//! list; that was four fifths of a lab session's first minute of journal.
//!
//! Three rules, each undone exactly by [`expand`]:
//! - In `plan` and `target`, a member whose value is `null`, `[]`, `{}` or its field's default
//!   is left out (checked: reading fills in just that).
//! - A step that is another instance of an earlier step (same `step_id`) may be written as
//!   `{"key": K, "like": BASE, "sub": {FROM: TO, ...}, "set": {FIELD: VALUE, ...}}`: the step
//!   whose key is `BASE`, with every occurrence of each `FROM` in its strings (object keys
//!   included) replaced by its `TO` (left to right, the longest `FROM` at each place, replaced
//!   text not read again), then each `set` field put in (`null`: removed), then `key` set.
//!   `BASE` is always a step written whole. Example:
//!   `{"key":"stop@node2","like":"stop@node1","sub":{"1/3":"2/3","127.0.0.1:38849":"127.0.0.1:39875","node1":"node2"}}`.
//! - A step written whole leaves out `step_id` when its key starts with it (`drain@node2`:
//!   `drain`), and members that read back as their default (`approvals: 1`).
//! - `target.nodes` is left out when it is the event's `nodes` (it always is).
//!
//! The writer checks that reading its line gives back the event it was given, and writes the
//! event plainly (as format 1 did) if not. Readers take both forms, so format-1 journals read
//! as before.

use serde::de::Error as _;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::engine::event::{Event, Stamped};
use crate::target::Node;

/// The `session_started` line for `ev`, compact where that reads back exactly; any other event
/// as serde writes it.
pub(super) fn encode(ev: &Stamped) -> Result<String, serde_json::Error> {
    if let Event::SessionStarted { .. } = &ev.event {
        for prune in [true, false] {
            let line = compacted(ev, prune)?;
            if decode(&line).is_ok_and(|back| back == *ev) {
                return Ok(line);
            }
        }
    }
    serde_json::to_string(ev)
}

/// Read a `session_started` line of either form.
pub(super) fn decode(line: &str) -> Result<Stamped, serde_json::Error> {
    let mut v: Value = serde_json::from_str(line)?;
    expand(&mut v, expansion_limit(line.len())).map_err(serde_json::Error::custom)?;
    serde_json::from_value(v)
}

/// The line, `seq`, `t_ms` and `type` first as every event line (the journal's index reads
/// them from the line's start), then the event's fields.
fn compacted(ev: &Stamped, prune: bool) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Line<'a> {
        seq: u64,
        t_ms: u64,
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(flatten)]
        rest: Map<String, Value>,
    }
    let Event::SessionStarted {
        plan,
        nodes,
        target,
        ..
    } = &ev.event
    else {
        return serde_json::to_string(ev);
    };
    let Value::Object(mut rest) = serde_json::to_value(&ev.event)? else {
        return serde_json::to_string(ev);
    };
    rest.remove("type");
    let nodes_v = rest.get("nodes").cloned();
    if let (Some(Value::Object(t)), Some(typed)) = (rest.get_mut("target"), target) {
        if t.get("nodes") == nodes_v.as_ref() {
            t.remove("nodes");
            if prune {
                // Checked without the node list, which is no longer here.
                let bare = crate::target::Target {
                    nodes: Vec::new(),
                    ..typed.as_ref().clone()
                };
                pruned_if_same(t, &bare);
                drop_defaults(t, &bare);
            }
        }
    }
    if let Some(Value::Object(p)) = rest.get_mut("plan") {
        let steps = match p.remove("steps") {
            Some(Value::Array(steps)) => steps,
            _ => Vec::new(),
        };
        if prune {
            // The plan's own members, checked as a plan without steps.
            let bare = crate::plan::Plan {
                steps: Vec::new(),
                ..plan.as_ref().clone()
            };
            p.insert("steps".into(), Value::Array(Vec::new()));
            pruned_if_same(p, &bare);
            drop_defaults(p, &bare);
            p.remove("steps");
        }
        let steps = steps
            .into_iter()
            .zip(&plan.steps)
            .map(|(v, typed)| match v {
                Value::Object(mut m) => {
                    if prune {
                        pruned_if_same(&mut m, typed);
                    }
                    Value::Object(m)
                }
                other => other,
            })
            .collect();
        let mut steps = compact_steps(steps, nodes);
        // Steps written whole lose what reads back as its default (`approvals: 1`, ...) and
        // the step id their key starts with. Steps written like them read back the same:
        // `set` holds every field in which they differ (`encode` checks the whole line).
        for (entry, typed) in steps.iter_mut().zip(&plan.steps) {
            if let Value::Object(m) = entry {
                if m.contains_key("like") {
                    continue;
                }
                if prune {
                    drop_defaults(m, typed);
                }
                if step_id_of(&typed.key) == typed.step_id {
                    m.remove("step_id");
                }
            }
        }
        p.insert("steps".into(), Value::Array(steps));
    }
    serde_json::to_string(&Line {
        seq: ev.seq,
        t_ms: ev.t_ms,
        kind: "session_started",
        rest,
    })
}

/// Prune `m` if what it then reads as is still `typed`: a missing member reads as its
/// default, and this checks that it is the default that was left out.
fn pruned_if_same<T>(m: &mut Map<String, Value>, typed: &T)
where
    T: serde::de::DeserializeOwned + PartialEq,
{
    let mut p = m.clone();
    prune_members(&mut p);
    if serde_json::from_value::<T>(Value::Object(p.clone())).is_ok_and(|back| back == *typed) {
        *m = p;
    }
}

/// Leave out, one at a time at every depth, each member of `m` without which it still reads
/// as `typed` (a member holding its field's default: `approvals: 1`, `per_node: true`).
fn drop_defaults<T>(m: &mut Map<String, Value>, typed: &T)
where
    T: serde::de::DeserializeOwned + PartialEq,
{
    enum Seg {
        Key(String),
        At(usize),
    }
    fn paths(v: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    at.push(Seg::Key(k.clone()));
                    out.push(at.iter().map(clone_seg).collect());
                    paths(x, at, out);
                    at.pop();
                }
            }
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    at.push(Seg::At(i));
                    paths(x, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    fn clone_seg(s: &Seg) -> Seg {
        match s {
            Seg::Key(k) => Seg::Key(k.clone()),
            Seg::At(i) => Seg::At(*i),
        }
    }
    fn parent<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Map<String, Value>> {
        let mut v = v;
        for seg in path {
            v = match seg {
                Seg::Key(k) => v.get_mut(k.as_str())?,
                Seg::At(i) => v.get_mut(*i)?,
            };
        }
        v.as_object_mut()
    }
    let mut root = Value::Object(std::mem::take(m));
    let mut all = Vec::new();
    paths(&root, &mut Vec::new(), &mut all);
    for path in all {
        let Some((Seg::Key(last), up)) = path.split_last() else {
            continue;
        };
        let Some(removed) = parent(&mut root, up).and_then(|p| p.remove(last.as_str())) else {
            continue; // gone with a member above it
        };
        let same = serde_json::from_value::<T>(root.clone()).is_ok_and(|back| back == *typed);
        if !same {
            if let Some(p) = parent(&mut root, up) {
                p.insert(last.clone(), removed);
            }
        }
    }
    if let Value::Object(back) = root {
        *m = back;
    }
}

/// The step id a step key starts with: all of it, or what comes before its loop items
/// (`drain@node2`: `drain`). A step written whole without `step_id` has this one.
fn step_id_of(key: &str) -> &str {
    key.split_once('@').map_or(key, |(id, _)| id)
}

/// How many bytes of text the steps written `like` another may expand to, for a line of
/// `line_len` bytes. Each such step copies its base with its `sub`s applied, so a crafted line
/// of size L could ask for about L² bytes (a long base repeated by many short entries, or a
/// short `FROM` replaced by a long `TO`). A line the writer made grows by less than its node
/// count (each copy of a step is an entry of its own on the line, and a step is copied once
/// per node) and less than its longest step over a few dozen bytes; 256 times the line, and
/// 64 MiB at least, is far over both for any plan written so far. What goes over is refused
/// before it is built.
pub(super) fn expansion_limit(line_len: usize) -> usize {
    line_len.saturating_mul(256).max(64 << 20)
}

/// Undo [`compacted`] in place: steps written as `like` another are written out again, and
/// `target.nodes` comes back from `nodes`. A plainly written event passes unchanged. The steps
/// written `like` another may add up to `limit` bytes of text (see [`expansion_limit`]).
pub(super) fn expand(v: &mut Value, limit: usize) -> Result<(), String> {
    let Value::Object(obj) = v else {
        return Ok(());
    };
    let nodes = obj.get("nodes").cloned();
    if let (Some(Value::Object(target)), Some(nodes)) = (obj.get_mut("target"), nodes) {
        target.entry("nodes").or_insert(nodes);
    }
    let Some(Value::Array(steps)) = obj.get_mut("plan").and_then(|p| p.get_mut("steps")) else {
        return Ok(());
    };
    let mut whole: std::collections::HashMap<String, usize> = Default::default();
    let mut expanded = 0usize;
    for i in 0..steps.len() {
        let Some(entry) = steps[i].as_object() else {
            continue;
        };
        let Some(like) = entry.get("like") else {
            if let Some(Value::String(key)) = entry.get("key") {
                let key = key.clone();
                whole.entry(key.clone()).or_insert(i);
                if let Value::Object(m) = &mut steps[i] {
                    m.entry("step_id")
                        .or_insert_with(|| Value::String(step_id_of(&key).to_string()));
                }
            }
            continue;
        };
        let step = i + 1;
        let like = like
            .as_str()
            .ok_or_else(|| format!("plan step {step}: `like` is not a step key"))?;
        let base = whole.get(like).map(|&b| &steps[b]).ok_or_else(|| {
            format!("plan step {step} is like {like:?}, which no step before it is")
        })?;
        let mut subs: Vec<(String, String)> = Vec::new();
        let mut set = Map::new();
        let mut key = None;
        for (field, value) in entry {
            match (field.as_str(), value) {
                ("like", _) => {}
                ("key", Value::String(k)) => key = Some(k.clone()),
                ("sub", Value::Object(m)) => {
                    for (from, to) in m {
                        let to = to.as_str().ok_or_else(|| {
                            format!("plan step {step}: `sub` {from:?} is not text")
                        })?;
                        if from.is_empty() {
                            return Err(format!("plan step {step}: `sub` has an empty key"));
                        }
                        subs.push((from.clone(), to.to_string()));
                    }
                }
                ("set", Value::Object(m)) => set = m.clone(),
                (other, _) => {
                    return Err(format!(
                        "plan step {step}: unexpected `{other}` in a step written like another"
                    ))
                }
            }
        }
        let key = key.ok_or_else(|| format!("plan step {step}: no `key`"))?;
        expanded = expanded.saturating_add(substituted_len(base, &subs));
        if expanded > limit {
            return Err(format!(
                "plan step {step}: the steps written like another expand to more than {limit} \
                 bytes ({} MiB), far more than a written line does; refused before building them",
                limit >> 20
            ));
        }
        let mut out = substitute(base, &subs);
        if let Value::Object(o) = &mut out {
            for (field, value) in set {
                if value.is_null() {
                    o.remove(&field);
                } else {
                    o.insert(field, value);
                }
            }
            o.insert("key".into(), Value::String(key));
        }
        steps[i] = out;
    }
    Ok(())
}

/// Each step written whole (the first of its `step_id`) or like the first of its `step_id`,
/// whichever is shorter.
fn compact_steps(steps: Vec<Value>, nodes: &[Node]) -> Vec<Value> {
    let by_name: std::collections::HashMap<&str, &Node> =
        nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let node = |step: &Value| {
        step.get("node")
            .and_then(Value::as_str)
            .and_then(|n| by_name.get(n).copied())
    };
    let mut first: std::collections::HashMap<String, usize> = Default::default();
    let mut out: Vec<Value> = Vec::with_capacity(steps.len());
    for step in steps {
        let id = step
            .get("step_id")
            .and_then(Value::as_str)
            .map(str::to_string);
        let base = id.as_ref().and_then(|id| first.get(id)).map(|&b| &out[b]);
        let like = base.and_then(|base| like_entry(base, node(base), &step, node(&step)));
        match like {
            Some(entry) if json_len(&entry) < json_len(&step) => out.push(entry),
            _ => {
                if let Some(id) = id {
                    first.entry(id).or_insert(out.len());
                }
                out.push(step);
            }
        }
    }
    out
}

/// `step` written like `base`, or `None` if either has no key.
fn like_entry(
    base: &Value,
    base_node: Option<&Node>,
    step: &Value,
    step_node: Option<&Node>,
) -> Option<Value> {
    let (Value::Object(b), Value::Object(s)) = (base, step) else {
        return None;
    };
    let base_key = b.get("key")?.as_str()?;
    let key = s.get("key")?.as_str()?;
    // What tells one instance from another: the node (its name, address, host, url, role and
    // tags) and where in its loops the instance is.
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let (Some(a), Some(n)) = (base_node, step_node) {
        pairs.push((a.name.clone(), n.name.clone()));
        pairs.push((a.url(), n.url()));
        pairs.push((a.address.clone(), n.address.clone()));
        pairs.push((a.host().to_string(), n.host().to_string()));
        if let (Some(x), Some(y)) = (&a.role, &n.role) {
            pairs.push((x.clone(), y.clone()));
        }
        for (k, x) in &a.tags {
            if let Some(y) = n.tags.get(k) {
                pairs.push((x.clone(), y.clone()));
            }
        }
    }
    if let (Some(Value::String(x)), Some(Value::String(y))) = (b.get("progress"), s.get("progress"))
    {
        // From the word where they differ: `node 1/3` -> `node 2/3` is `1/3` -> `2/3`.
        let same = x
            .char_indices()
            .zip(y.chars())
            .take_while(|((_, a), b)| a == b)
            .filter(|((_, a), _)| *a == ' ')
            .last()
            .map_or(0, |((i, _), _)| i + 1);
        pairs.push((x[same..].to_string(), y[same..].to_string()));
        pairs.push((x.clone(), y.clone()));
    }
    let mut text = Vec::new();
    strings(base, &mut text);
    let mut subs: Vec<(String, String)> = Vec::new();
    for (from, to) in pairs {
        if from.is_empty()
            || from == to
            || subs.iter().any(|(f, _)| *f == from)
            || !text.iter().any(|t| t.contains(from.as_str()))
        {
            continue;
        }
        subs.push((from, to));
    }
    // A pair the others already make (the url, once the address is replaced) is left out.
    let mut i = 0;
    while i < subs.len() {
        let others: Vec<(String, String)> = subs
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, p)| p.clone())
            .collect();
        if replace_all(&subs[i].0, &others) == subs[i].1 {
            subs.remove(i);
        } else {
            i += 1;
        }
    }
    let entry = |subs: &[(String, String)]| {
        let made = substitute(base, subs);
        let made = made.as_object();
        let mut set = Map::new();
        for (field, value) in s {
            if field != "key" && made.and_then(|m| m.get(field)) != Some(value) {
                set.insert(field.clone(), value.clone());
            }
        }
        for field in made.into_iter().flat_map(|m| m.keys()) {
            if field != "key" && !s.contains_key(field) {
                set.insert(field.clone(), Value::Null);
            }
        }
        let mut e = Map::new();
        e.insert("key".into(), Value::String(key.to_string()));
        e.insert("like".into(), Value::String(base_key.to_string()));
        if !subs.is_empty() {
            let m: Map<String, Value> = subs
                .iter()
                .map(|(f, t)| (f.clone(), Value::String(t.clone())))
                .collect();
            e.insert("sub".into(), Value::Object(m));
        }
        if !set.is_empty() {
            e.insert("set".into(), Value::Object(set));
        }
        Value::Object(e)
    };
    let mut best = entry(&subs);
    // A pair that also changes text it should not (a role named in a runbook) may cost more
    // than it saves: leave it out when that is shorter.
    if best.get("set").is_some() {
        let mut i = 0;
        while i < subs.len() {
            let mut fewer = subs.clone();
            fewer.remove(i);
            let e = entry(&fewer);
            if json_len(&e) < json_len(&best) {
                best = e;
                subs = fewer;
            } else {
                i += 1;
            }
        }
    }
    Some(best)
}

/// Every string in `v`, object keys included.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k);
                strings(x, out);
            }
        }
        _ => {}
    }
}

/// `v` with [`replace_all`] applied to every string and object key.
fn substitute(v: &Value, subs: &[(String, String)]) -> Value {
    if subs.is_empty() {
        return v.clone();
    }
    match v {
        Value::String(s) => Value::String(replace_all(s, subs)),
        Value::Array(a) => Value::Array(a.iter().map(|x| substitute(x, subs)).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, x)| (replace_all(k, subs), substitute(x, subs)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// About how many bytes [`substitute`] makes of `v`: the text of its strings and keys after
/// replacement, plus a little for each value. Counted without building anything.
fn substituted_len(v: &Value, subs: &[(String, String)]) -> usize {
    match v {
        Value::String(s) => replaced_len(s, subs).saturating_add(2),
        Value::Array(a) => a.iter().fold(2usize, |n, x| {
            n.saturating_add(substituted_len(x, subs)).saturating_add(1)
        }),
        Value::Object(m) => m.iter().fold(2usize, |n, (k, x)| {
            n.saturating_add(replaced_len(k, subs))
                .saturating_add(substituted_len(x, subs))
                .saturating_add(4)
        }),
        _ => 8,
    }
}

/// Replace each `from` in `s` by its `to`: left to right, the longest `from` that starts at a
/// place wins, and replaced text is not read again.
fn replace_all(s: &str, subs: &[(String, String)]) -> String {
    let mut out = String::with_capacity(s.len());
    replace_each(s, subs, |piece| out.push_str(piece));
    out
}

/// The length of [`replace_all`]'s result, without building it.
fn replaced_len(s: &str, subs: &[(String, String)]) -> usize {
    if subs.is_empty() {
        return s.len();
    }
    let mut len = 0usize;
    replace_each(s, subs, |piece| len = len.saturating_add(piece.len()));
    len
}

/// [`replace_all`]'s walk: each piece of the result in order, to `emit`.
fn replace_each<'a>(s: &'a str, subs: &'a [(String, String)], mut emit: impl FnMut(&'a str)) {
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        let hit = subs
            .iter()
            .filter(|(from, _)| !from.is_empty() && rest.starts_with(from.as_str()))
            .max_by_key(|(from, _)| from.len());
        match hit {
            Some((from, to)) => {
                emit(to);
                rest = &rest[from.len()..];
            }
            None => {
                emit(&rest[..c.len_utf8()]);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
}

/// Leave out members whose value is `null`, `[]` or `{}`, at every depth (items of an array
/// are kept, their members pruned).
fn prune_members(m: &mut Map<String, Value>) {
    m.retain(|_, v| {
        prune_value(v);
        !matches!(v, Value::Null)
            && v.as_array().is_none_or(|a| !a.is_empty())
            && v.as_object().is_none_or(|o| !o.is_empty())
    });
}

fn prune_value(v: &mut Value) {
    match v {
        Value::Object(m) => prune_members(m),
        Value::Array(a) => a.iter_mut().for_each(prune_value),
        _ => {}
    }
}

fn json_len(v: &Value) -> usize {
    serde_json::to_string(v).map_or(usize::MAX, |s| s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacing_takes_the_longest_match_and_never_rereads() {
        let subs = vec![
            ("node1".to_string(), "node2".to_string()),
            ("node10".to_string(), "node20".to_string()),
            ("2".to_string(), "1".to_string()),
        ];
        assert_eq!(replace_all("node1 node10 x2", &subs), "node2 node20 x1");
        assert_eq!(replace_all("é node1é", &subs), "é node2é");
        assert_eq!(replace_all("", &subs), "");
    }

    /// A step written like another is read back as that step with its text replaced and its
    /// `set` fields put in (`null` removes one); a reference to no earlier step, or a `sub`
    /// that is not text, is refused with the step it is in.
    #[test]
    fn like_entries_expand_and_bad_ones_are_refused() {
        let mut v = serde_json::json!({"nodes": [], "plan": {"steps": [
            {"key": "stop@node1", "title": "Stop node1", "node": "node1", "undo": {"x": 1}},
            {"key": "stop@node2", "like": "stop@node1", "sub": {"node1": "node2"},
             "set": {"undo": null, "progress": "2/2"}},
        ]}});
        expand(&mut v, expansion_limit(0)).unwrap();
        assert_eq!(
            v["plan"]["steps"][1],
            serde_json::json!({"key": "stop@node2", "step_id": "stop", "title": "Stop node2",
                               "node": "node2", "progress": "2/2"})
        );
        for (bad, says) in [
            (
                serde_json::json!({"key": "b", "like": "nowhere"}),
                "plan step 2 is like \"nowhere\", which no step before it is",
            ),
            (
                serde_json::json!({"key": "b", "like": "a", "sub": {"a": 1}}),
                "plan step 2: `sub` \"a\" is not text",
            ),
            (
                serde_json::json!({"key": "b", "like": "a", "what": 1}),
                "plan step 2: unexpected `what` in a step written like another",
            ),
            (serde_json::json!({"like": "a"}), "plan step 2: no `key`"),
        ] {
            let mut v = serde_json::json!({"plan": {"steps": [{"key": "a"}, bad]}});
            assert_eq!(expand(&mut v, expansion_limit(0)).unwrap_err(), says);
        }
    }
}
