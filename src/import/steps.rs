//! Finding the runbook's steps in its outline.
//!
//! - Each top-level item of a numbered list is a step (nested items are part of its text); a
//!   runbook without any numbered list (Jahia's guide is bullets) has its bullets as steps.
//! - A heading numbered `1.`/`2)` whose section holds no listed steps is a step (Milvus's
//!   "1. Check the Milvus version"); so is any heading whose own text holds commands but no
//!   listed steps (Milvus's "Upgrade Milvus using Helm").
//! - Code after a step, before the next heading, belongs to that step.
//! - A note (blockquote, alert box) never holds steps: its commands are reported, not taken.

use std::sync::LazyLock;

use regex::Regex;

use super::command::{self, Command};
use super::hints::{self, Hint};
use super::outline::{for_text, tidy, Block, Code};

/// One step of the runbook, as the draft will have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftStep {
    pub title: String,
    /// The runbook's text for this step, in its own language.
    pub text: String,
    /// The headings above it, outermost first.
    pub section: Vec<String>,
    pub line: usize,
    pub end_line: usize,
    pub commands: Vec<Command>,
    pub reviews: Vec<String>,
    pub hints: Vec<Hint>,
    /// Hidden on the page (`display: none`): the author may not have meant it.
    pub hidden: bool,
}

/// Something of the runbook that did not become (part of) a step, for the draft's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Left {
    pub line: usize,
    pub what: String,
}

/// Numbered like a step (`1. Check`, `2) Stop`), not like a chapter (`5.3.1. Upgrade`).
static NUMBERED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\s*\d{1,3}[.)]\s+(?P<rest>\S.*)$").expect("a valid regex"));

pub fn find(blocks: &[Block]) -> (Vec<DraftStep>, Vec<Left>) {
    let bullets_are_steps = !blocks
        .iter()
        .any(|b| matches!(b, Block::Item { ordered: true, place, .. } if !place.note));
    let is_step_item = |b: &Block| match b {
        Block::Item { ordered, place, .. } => !place.note && (*ordered || bullets_are_steps),
        _ => false,
    };
    let mut steps: Vec<DraftStep> = Vec::new();
    let mut left = Vec::new();
    let mut headings: Vec<(u8, String)> = Vec::new();
    // The step the blocks since the last heading belong to, and whether it came from a heading.
    let mut current: Option<(usize, bool)> = None;
    for (i, block) in blocks.iter().enumerate() {
        match block {
            Block::Heading {
                level,
                text,
                line,
                place,
            } => {
                while headings.last().is_some_and(|(l, _)| l >= level) {
                    headings.pop();
                }
                let section: Vec<String> = headings.iter().map(|(_, t)| t.clone()).collect();
                headings.push((*level, text.clone()));
                current = None;
                let rest = &blocks[i + 1..];
                let numbered = NUMBERED.captures(text);
                let own = own_blocks(rest);
                let becomes_step = !place.note
                    && ((numbered.is_some() && !subtree(rest, *level).iter().any(is_step_item))
                        || (!own.iter().any(is_step_item) && own.iter().any(has_commands)));
                if becomes_step {
                    let title = numbered
                        .and_then(|c| c.name("rest").map(|m| m.as_str().to_string()))
                        .unwrap_or_else(|| text.clone());
                    steps.push(DraftStep {
                        title: title.clone(),
                        text: String::new(),
                        section,
                        line: *line,
                        end_line: *line,
                        commands: Vec::new(),
                        reviews: Vec::new(),
                        hints: Vec::new(),
                        hidden: place.hidden,
                    });
                    current = Some((steps.len() - 1, true));
                }
            }
            Block::Item {
                text,
                line,
                end_line,
                codes,
                place,
                ..
            } if is_step_item(block) => {
                let mut step = DraftStep {
                    title: title_of(text),
                    text: text.clone(),
                    section: headings.iter().map(|(_, t)| t.clone()).collect(),
                    line: *line,
                    end_line: *end_line,
                    commands: Vec::new(),
                    reviews: Vec::new(),
                    hints: Vec::new(),
                    hidden: place.hidden,
                };
                for code in codes {
                    take_code(&mut step, code, false, true);
                }
                steps.push(step);
                current = Some((steps.len() - 1, false));
            }
            Block::Item {
                text, line, place, ..
            } => {
                let what = if place.note {
                    "a note's list item"
                } else {
                    "a list item"
                };
                left.push(Left {
                    line: *line,
                    what: format!("{what}: {}", excerpt(text)),
                });
                if let Some((s, _)) = current {
                    note_codes(&mut steps[s], block);
                }
            }
            Block::Para {
                text,
                line,
                codes,
                place,
            } => match current {
                Some((s, from_heading)) if !place.note => {
                    let step = &mut steps[s];
                    if from_heading {
                        push_text(&mut step.text, text);
                        step.end_line = step.end_line.max(*line);
                    }
                    for code in codes {
                        take_code(step, code, !from_heading, true);
                    }
                }
                Some((s, _)) => note_codes(&mut steps[s], block),
                None => {
                    if codes.iter().any(|c| !command::read(c).commands.is_empty()) {
                        left.push(Left {
                            line: *line,
                            what: format!("a command in text: {}", excerpt(text)),
                        });
                    }
                }
            },
            Block::Code(code) => match current {
                Some((s, _)) if code.place.note => note_codes(&mut steps[s], block),
                Some((s, from_heading)) => {
                    let step = &mut steps[s];
                    take_code(step, code, !from_heading, false);
                    step.end_line = step.end_line.max(
                        code.line
                            .saturating_add(code.text.lines().count().saturating_sub(1)),
                    );
                }
                None => {
                    if !command::read(code).commands.is_empty() {
                        left.push(Left {
                            line: code.line,
                            what: format!("a code block: {}", excerpt(&code.text)),
                        });
                    }
                }
            },
        }
    }
    for step in &mut steps {
        step.hints = hints::hints(&format!("{}\n{}", step.title, step.text));
        let prose = step
            .text
            .lines()
            .filter(|l| {
                !l.starts_with("    ") && !step.commands.iter().any(|c| l.contains(&c.text))
            })
            .count();
        if !step.commands.is_empty() && prose > 1 {
            step.reviews.push(
                "the runbook's step says more than its commands do: add `manual` steps for the \
                 rest if it is work to do"
                    .into(),
            );
        }
    }
    flag_alternatives(&mut steps);
    (steps, left)
}

/// The one program every command of a step runs (not a shell script).
fn program(step: &DraftStep) -> Option<&str> {
    let first = step.commands.first()?.argv.first()?;
    (first != "sh" && step.commands.iter().all(|c| c.argv.first() == Some(first)))
        .then_some(first.as_str())
}

/// Three or more steps in a row, in one section, that all run the same program with other
/// options are most likely alternatives for different set-ups (the Milvus guide's
/// `migrate.sh` with a namespace, a root path, an image...), not a sequence to run in full.
fn flag_alternatives(steps: &mut [DraftStep]) {
    let mut i = 0;
    while i < steps.len() {
        let Some(p) = program(&steps[i]).map(str::to_string) else {
            i += 1;
            continue;
        };
        let mut j = i + 1;
        while j < steps.len()
            && steps[j].section == steps[i].section
            && program(&steps[j]) == Some(p.as_str())
        {
            j += 1;
        }
        if j - i >= 3 {
            let msg = format!(
                "steps {}-{j} all run `{p}`, each with other options: likely alternatives for \
                 different set-ups rather than a sequence; keep the one that fits (or make them \
                 `optional`)",
                i + 1
            );
            for s in &mut steps[i..j] {
                s.reviews.push(msg.clone());
            }
        }
        i = j;
    }
}

/// The blocks of a heading's own text: up to the next heading.
fn own_blocks(rest: &[Block]) -> &[Block] {
    let end = rest
        .iter()
        .position(|b| matches!(b, Block::Heading { .. }))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The blocks of a heading's section: up to the next heading of its level or above.
fn subtree(rest: &[Block], level: u8) -> &[Block] {
    let end = rest
        .iter()
        .position(|b| matches!(b, Block::Heading { level: l, .. } if *l <= level))
        .unwrap_or(rest.len());
    &rest[..end]
}

fn has_commands(b: &Block) -> bool {
    let codes: &[Code] = match b {
        Block::Para { codes, place, .. } | Block::Item { codes, place, .. } if !place.note => codes,
        Block::Code(c) if !c.place.note => std::slice::from_ref(c),
        _ => return false,
    };
    codes.iter().any(|c| !command::read(c).commands.is_empty())
}

/// A step takes a piece of code: its commands become actions; a block that is not commands
/// (settings, output) is only text, where the operator reads it. `in_text`: the code is in the
/// step's text already (an item's own code).
fn take_code(step: &mut DraftStep, code: &Code, after_item: bool, in_text: bool) {
    let reading = command::read(code);
    step.reviews.extend(reading.reviews);
    if !in_text && !code.inline {
        push_text(&mut step.text, &tidy(&for_text(code)));
    }
    for mut c in reading.commands {
        if after_item {
            c.reviews.push(format!(
                "the code at line {} follows the list item of line {}; taken as this step's",
                c.line, step.line
            ));
        }
        step.commands.push(c);
    }
}

/// Commands inside a note (an alert box, a blockquote) are the author's aside, not the
/// procedure: named for review on the step they sit in.
fn note_codes(step: &mut DraftStep, block: &Block) {
    let codes: &[Code] = match block {
        Block::Para { codes, .. } | Block::Item { codes, .. } => codes,
        Block::Code(c) => std::slice::from_ref(c),
        Block::Heading { .. } => return,
    };
    for code in codes {
        for c in command::read(code).commands {
            step.reviews.push(format!(
                "a note at line {} shows `{}`; not taken as an action",
                c.line, c.text
            ));
        }
    }
}

fn push_text(text: &mut String, more: &str) {
    if more.trim().is_empty() {
        return;
    }
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(more);
}

const MAX_TITLE_CHARS: usize = 100;

/// A step's title: its first line's first sentence, without the closing punctuation.
pub fn title_of(text: &str) -> String {
    let first = text.lines().next().unwrap_or("").trim();
    let sentence = first_sentence(first);
    let t = sentence
        .trim_end_matches(['.', ':', ',', '。', '：', '、', '，'])
        .trim_end();
    let t = if t.is_empty() { first } else { t };
    if t.chars().count() <= MAX_TITLE_CHARS {
        return t.to_string();
    }
    let cut: String = t.chars().take(MAX_TITLE_CHARS - 1).collect();
    let cut = match cut.rfind(' ') {
        Some(i) if i > MAX_TITLE_CHARS / 2 => cut[..i].to_string(),
        _ => cut,
    };
    format!("{cut}…")
}

/// Up to the first `. `, `! `, `? ` or `。` that has more after it.
fn first_sentence(s: &str) -> &str {
    for (i, c) in s.char_indices() {
        let end = i + c.len_utf8();
        let more = !s[end..].trim().is_empty();
        let ends = match c {
            '。' => true,
            '.' | '!' | '?' => s[end..].starts_with(' '),
            _ => false,
        };
        if ends && more {
            return &s[..end];
        }
    }
    s
}

fn excerpt(text: &str) -> String {
    let first = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if first.chars().count() > 60 {
        format!("{}…", first.chars().take(59).collect::<String>())
    } else {
        first.to_string()
    }
}
