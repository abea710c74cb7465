//! The runbook's outline, the same for Markdown and HTML: headings, top-level list items (with
//! everything nested in them), paragraphs and code, each with the line it starts on. The two
//! front ends (`markdown`, `html`) drive an [`OutlineBuilder`] with the same calls; the step
//! finder (`steps`) only ever sees this.

/// Where a block sits: inside a note (a blockquote, an HTML `alert` box) or hidden on the page
/// (`display: none`). A note's list is not a list of steps, and a hidden section is flagged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    pub note: bool,
    pub hidden: bool,
}

/// A piece of code: a block (fenced, indented, `<pre>`) or an inline span (`` `...` ``,
/// `<code>` in running text: a command only when it carries a prompt like `$ `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Code {
    /// The block's language (` ```bash `, `class="language-shell"`), lowercase.
    pub lang: Option<String>,
    pub text: String,
    /// The line of the code's first line of text.
    pub line: usize,
    pub inline: bool,
    pub place: Place,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Block {
    Heading {
        level: u8,
        text: String,
        line: usize,
        place: Place,
    },
    /// A top-level list item; nested lists are part of its text.
    Item {
        ordered: bool,
        text: String,
        line: usize,
        end_line: usize,
        codes: Vec<Code>,
        place: Place,
    },
    Para {
        text: String,
        line: usize,
        codes: Vec<Code>,
        place: Place,
    },
    Code(Code),
}

#[derive(Debug)]
struct ListCtx {
    ordered: bool,
    next: u64,
}

#[derive(Debug)]
struct Acc {
    text: String,
    line: usize,
    codes: Vec<Code>,
}

impl Acc {
    fn new(line: usize) -> Self {
        Acc {
            text: String::new(),
            line,
            codes: Vec::new(),
        }
    }
}

/// Builds the outline from a front end's events. Text outside a heading, paragraph or list item
/// (an HTML table cell, a `<div>`'s loose text) is not part of any block.
#[derive(Debug, Default)]
pub struct OutlineBuilder {
    blocks: Vec<Block>,
    lists: Vec<ListCtx>,
    item: Option<(bool, Acc)>,
    para: Option<Acc>,
    heading: Option<(u8, Acc)>,
    notes: usize,
    hidden: usize,
}

impl OutlineBuilder {
    pub fn place(&self) -> Place {
        Place {
            note: self.notes > 0,
            hidden: self.hidden > 0,
        }
    }

    pub fn enter_note(&mut self) {
        self.notes += 1;
    }

    pub fn leave_note(&mut self) {
        self.notes = self.notes.saturating_sub(1);
    }

    pub fn enter_hidden(&mut self) {
        self.hidden += 1;
    }

    pub fn leave_hidden(&mut self) {
        self.hidden = self.hidden.saturating_sub(1);
    }

    pub fn start_heading(&mut self, level: u8, line: usize) {
        self.end_para();
        self.heading = Some((level, Acc::new(line)));
    }

    pub fn end_heading(&mut self) {
        if let Some((level, acc)) = self.heading.take() {
            let place = self.place();
            self.blocks.push(Block::Heading {
                level,
                text: tidy(&acc.text),
                line: acc.line,
                place,
            });
        }
    }

    pub fn start_list(&mut self, ordered: bool, start: u64) {
        self.end_para();
        self.lists.push(ListCtx {
            ordered,
            next: start,
        });
    }

    pub fn end_list(&mut self) {
        self.lists.pop();
    }

    /// A list item starts. Top-level items become blocks; a nested one is written into its
    /// top-level item's text with its marker, indented.
    pub fn start_item(&mut self, line: usize) {
        let depth = self.lists.len();
        let Some(list) = self.lists.last_mut() else {
            return;
        };
        let marker = if list.ordered {
            format!("{}. ", list.next)
        } else {
            "- ".to_string()
        };
        list.next = list.next.saturating_add(1);
        let ordered = list.ordered;
        if depth == 1 {
            self.end_para();
            self.item = Some((ordered, Acc::new(line)));
        } else if let Some((_, acc)) = &mut self.item {
            newline(&mut acc.text);
            acc.text.push_str(&"  ".repeat(depth - 1));
            acc.text.push_str(&marker);
        }
    }

    pub fn end_item(&mut self, end_line: usize) {
        if self.lists.len() != 1 {
            return;
        }
        if let Some((ordered, acc)) = self.item.take() {
            let place = self.place();
            self.blocks.push(Block::Item {
                ordered,
                text: tidy(&acc.text),
                line: acc.line,
                end_line: end_line.max(acc.line),
                codes: acc.codes,
                place,
            });
        }
    }

    pub fn in_item(&self) -> bool {
        self.item.is_some()
    }

    pub fn start_para(&mut self, line: usize) {
        if let Some((_, acc)) = &mut self.item {
            newline(&mut acc.text);
        } else if self.heading.is_none() {
            self.end_para();
            self.para = Some(Acc::new(line));
        }
    }

    pub fn end_para(&mut self) {
        if let Some(acc) = self.para.take() {
            let text = tidy(&acc.text);
            if !text.is_empty() || !acc.codes.is_empty() {
                let place = self.place();
                self.blocks.push(Block::Para {
                    text,
                    line: acc.line,
                    codes: acc.codes,
                    place,
                });
            }
        }
    }

    fn text_acc(&mut self) -> Option<&mut Acc> {
        if let Some((_, acc)) = &mut self.heading {
            Some(acc)
        } else if let Some((_, acc)) = &mut self.item {
            Some(acc)
        } else {
            self.para.as_mut()
        }
    }

    /// Running text. At a line's start, ASCII spaces are layout, not content (HTML's indented
    /// source); a non-breaking space is kept as indentation.
    pub fn text(&mut self, s: &str) {
        if let Some(acc) = self.text_acc() {
            let s = if acc.text.is_empty() || acc.text.ends_with('\n') {
                s.trim_start_matches(|c: char| c.is_ascii_whitespace())
            } else {
                s
            };
            acc.text.push_str(s);
        }
    }

    pub fn line_break(&mut self) {
        if let Some(acc) = self.text_acc() {
            acc.text.push('\n');
        }
    }

    /// Inline code in running text: shown in backquotes, and kept as code (it may be a command
    /// with its prompt, `$ helm list`).
    pub fn inline_code(&mut self, code: &str, line: usize) {
        let place = self.place();
        let in_heading = self.heading.is_some();
        if let Some(acc) = self.text_acc() {
            acc.text.push('`');
            acc.text.push_str(code);
            acc.text.push('`');
            if !in_heading {
                acc.codes.push(Code {
                    lang: None,
                    text: code.to_string(),
                    line,
                    inline: true,
                    place,
                });
            }
        }
    }

    pub fn code_block(&mut self, lang: Option<String>, text: String, line: usize) {
        let code = Code {
            lang: lang.filter(|l| !l.is_empty()).map(|l| l.to_lowercase()),
            text,
            line,
            inline: false,
            place: self.place(),
        };
        if let Some((_, acc)) = &mut self.item {
            // In the item's text where the runbook has it: a setting or a command is read
            // with the sentence that introduces it.
            newline(&mut acc.text);
            acc.text.push_str(&for_text(&code));
            acc.text.push('\n');
            acc.codes.push(code);
        } else {
            self.end_para();
            self.blocks.push(Block::Code(code));
        }
    }

    pub fn finish(mut self) -> Vec<Block> {
        self.end_heading();
        self.end_para();
        while !self.lists.is_empty() {
            self.end_item(0);
            self.lists.pop();
        }
        self.blocks
    }
}

/// Code blocks longer than this are referred to, not copied into a step's text.
const MAX_COPIED_LINES: usize = 12;

/// A code block as a step's text shows it: indented, or named when it is long (a table of
/// versions, a command's output).
pub fn for_text(code: &Code) -> String {
    let lines: Vec<&str> = code.text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() > MAX_COPIED_LINES {
        return format!(
            "\u{a0}   (a block of {} lines at line {} of the runbook)",
            lines.len(),
            code.line
        );
    }
    // The block's common indentation goes; non-breaking spaces make its own survive `tidy`.
    let common = lines
        .iter()
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    lines
        .iter()
        .map(|l| format!("\u{a0}   {}", l.get(common..).unwrap_or(l).trim_end()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn newline(s: &mut String) {
    if !s.is_empty() && !s.ends_with('\n') {
        s.push('\n');
    }
}

/// Runs of spaces and blank lines dropped, a line's indentation kept (a nested step's); a
/// non-breaking space counts as a space (`&nbsp;` indents the Neo4j guide's sub-steps).
pub fn tidy(s: &str) -> String {
    s.replace('\u{a0}', " ")
        .lines()
        .filter_map(|l| {
            let words = l.split_whitespace().collect::<Vec<_>>().join(" ");
            let indent = l.len() - l.trim_start().len();
            (!words.is_empty()).then(|| format!("{}{words}", " ".repeat(indent.min(8))))
        })
        .collect::<Vec<_>>()
        .join("\n")
}
