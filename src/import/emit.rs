//! The draft procedure as TOML text, with a `# REVIEW:` comment on every guess and a source
//! reference (`RUNBOOK:line`) on every step. Values are written by the `toml` crate; the text
//! around them is ours, since a serializer cannot write comments.

use super::command::Command;
use super::steps::{DraftStep, Left};

/// What the draft is called and where it came from.
#[derive(Debug, Clone)]
pub struct Header {
    pub name: String,
    pub product: String,
    /// True when `product` was guessed from the file name.
    pub product_guessed: bool,
    pub title: Option<String>,
    /// The runbook's file name, as each step cites it.
    pub source: String,
    pub format: &'static str,
}

/// A TOML string value. `${` would open a template in a procedure, so the runbook's own `${`
/// (a shell variable) is written `$${`, which the procedure reads back as `${`.
pub fn quoted(s: &str) -> String {
    toml::Value::String(s.replace("${", "$${")).to_string()
}

/// Text from the runbook as comment lines. TOML allows no control character in a comment
/// but a tab: escape sequences go whole (`terminal_text::strip`, so no colour code's or
/// title's leftovers), any other control (a stray `\r`, a form feed) becomes a space.
fn comment_lines(out: &mut String, prefix: &str, text: &str) {
    for (i, l) in crate::terminal_text::strip(text).lines().enumerate() {
        let p = if i == 0 { prefix } else { "#   " };
        out.push_str(p);
        out.extend(
            l.chars()
                .map(|c| if c.is_control() && c != '\t' { ' ' } else { c }),
        );
        out.push('\n');
    }
}

fn review(out: &mut String, text: &str) {
    comment_lines(out, "# REVIEW: ", text);
}

pub fn procedure(h: &Header, steps: &[DraftStep], left: &[Left]) -> String {
    let mut out = String::new();
    comment_lines(
        &mut out,
        "# ",
        &format!(
            "Draft procedure made by `flightdeck import` from {} ({}). Nothing was run.",
            h.source.replace('\n', " "),
            h.format
        ),
    );
    out.push_str(
        "# Every guess carries a `# REVIEW:` comment; each step cites its lines in the runbook.\n\
         # Not in a runbook, so not in this draft — add them before a real run:\n\
         #   - confirm kinds: every step asks `confirm = \"yes\"`; risky ones want \"phrase\"\n\
         #   - undo: none is inferred; add `undo` wherever a step can be reversed\n\
         #   - gates: no check is inferred; add `wait` steps where the runbook says to verify\n\
         #   - downtime, the point of no return (`irreversible`), loops over nodes, guards\n\
         #   - commands run where flightdeck runs: bind node-side ones in the target (`call`)\n",
    );
    if !left.is_empty() {
        out.push_str("# Not turned into steps (check nothing is missing):\n");
        for l in left {
            comment_lines(
                &mut out,
                "#   ",
                &format!("{}:{}: {}", h.source, l.line, l.what),
            );
        }
    }
    out.push('\n');
    out.push_str(&format!("name = {}\n", quoted(&h.name)));
    if h.product_guessed {
        review(
            &mut out,
            "the product is guessed from the file name; `run --lab` needs a built-in one or a \
             lab personality for it",
        );
    }
    out.push_str(&format!("product = {}\n", quoted(&h.product)));
    let description = match &h.title {
        Some(t) => format!("{t} (drafted from {})", h.source),
        None => format!("Drafted from {}", h.source),
    };
    out.push_str(&format!("description = {}\n", quoted(&description)));
    let total = steps.len();
    for (i, step) in steps.iter().enumerate() {
        out.push('\n');
        emit_step(&mut out, h, i + 1, total, step);
    }
    out
}

fn emit_step(out: &mut String, h: &Header, n: usize, total: usize, step: &DraftStep) {
    let lines = if step.end_line > step.line {
        format!("{}:{}-{}", h.source, step.line, step.end_line)
    } else {
        format!("{}:{}", h.source, step.line)
    };
    comment_lines(out, "# ── ", &format!("Step {n}/{total} · {lines}"));
    if !step.section.is_empty() {
        comment_lines(out, "# Section: ", &step.section.join(" › "));
    }
    if step.hidden {
        review(
            out,
            "this part of the page is hidden (`display: none`): the guide may not mean it for \
             this version",
        );
    }
    for r in &step.reviews {
        review(out, r);
    }
    for hint in &step.hints {
        review(
            out,
            &format!("{} (the runbook says \"{}\")", hint.advice, hint.word),
        );
    }
    let mut runbook = step.text.clone();
    if !step.section.is_empty() {
        runbook = format!("[{}]\n{runbook}", step.section.join(" › "));
    }
    runbook.push_str(&format!("\n(runbook: {lines})"));
    let runbook = runbook.trim().to_string();
    match step.commands.as_slice() {
        [] => {
            let text = if step.text.trim().is_empty() {
                step.title.as_str()
            } else {
                step.text.as_str()
            };
            table(out, &format!("step{n}"), &step.title, &runbook);
            out.push_str(&format!(
                "action = {{ kind = \"manual\", text = {} }}\n",
                quoted(text)
            ));
        }
        [one] => {
            command_reviews(out, one);
            table(out, &format!("step{n}"), &step.title, &runbook);
            run_action(out, one);
        }
        many => {
            let k = many.len();
            for (j, c) in many.iter().enumerate() {
                if j > 0 {
                    out.push('\n');
                }
                command_reviews(out, c);
                let title = format!("{} ({}/{k})", step.title, j + 1);
                table(out, &format!("step{n}-{}", j + 1), &title, &runbook);
                run_action(out, c);
            }
        }
    }
}

fn command_reviews(out: &mut String, c: &Command) {
    for r in &c.reviews {
        review(out, &format!("line {}: {r}", c.line));
    }
    if !c.reviews.is_empty() || c.argv.first().is_some_and(|p| p == "sh") {
        return;
    }
    review(
        out,
        &format!(
            "line {}: taken from the runbook as written; no undo inferred (add `undo` if it can \
             be reversed)",
            c.line
        ),
    );
}

fn table(out: &mut String, id: &str, title: &str, runbook: &str) {
    out.push_str("[[steps]]\n");
    out.push_str(&format!("id = {}\n", quoted(id)));
    out.push_str(&format!("title = {}\n", quoted(title)));
    out.push_str(&format!("runbook = {}\n", quoted(runbook)));
    out.push_str("confirm = \"yes\"  # REVIEW: a default; \"phrase\" for a risky step\n");
}

fn run_action(out: &mut String, c: &Command) {
    let argv: Vec<String> = c.argv.iter().map(|a| quoted(a)).collect();
    out.push_str(&format!(
        "action = {{ kind = \"run\", argv = [{}] }}\n",
        argv.join(", ")
    ));
}
