//! HTML into the outline, with html5ever's tokenizer (the WHATWG tokenizer: entities, attributes,
//! raw-text elements, with the line of every token). The outline needs only headings, lists,
//! paragraphs, `<pre>` and `<code>`, so the tokens drive the [`OutlineBuilder`] directly; what a
//! browser would hide (`display: none`) is flagged, an alert box is a note.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::TokenizerResult;

use super::outline::{Block, OutlineBuilder};
use super::source::Source;
use super::ImportError;

/// What an open element did on entering, undone on its end tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entered {
    Note,
    Hidden,
    NoteHidden,
    Nothing,
}

#[derive(Debug, Default)]
struct State {
    b: OutlineBuilder,
    /// Elements whose text is not content (buttons, icons, scripts).
    skip: usize,
    /// An open `<pre>`: language, first line, text.
    pre: Option<(Option<String>, usize, String)>,
    /// An open inline `<code>`: line, text.
    code: Option<(usize, String)>,
    /// Open `div`/`blockquote`/`aside`/`section` elements and what each entered.
    boxes: Vec<(String, Entered)>,
    /// Per open list: whether it has an item open.
    items: Vec<bool>,
    heading: bool,
}

struct Sink(RefCell<State>);

const SKIPPED: [&str; 8] = [
    "button", "svg", "script", "style", "template", "head", "noscript", "select",
];

fn attr(tag: &Tag, name: &str) -> Option<String> {
    tag.attrs
        .iter()
        .find(|a| &*a.name.local == name)
        .map(|a| a.value.to_string())
}

fn lang_of(tag: &Tag) -> Option<String> {
    attr(tag, "class")?.split_whitespace().find_map(|c| {
        c.strip_prefix("language-")
            .or_else(|| c.strip_prefix("lang-"))
            .map(str::to_string)
    })
}

fn box_kind(tag: &Tag) -> Entered {
    let name = &*tag.name;
    let class = attr(tag, "class").unwrap_or_default().to_lowercase();
    let note = matches!(name, "blockquote" | "aside")
        || class.split_whitespace().any(|c| {
            matches!(
                c,
                "alert" | "admonition" | "note" | "warning" | "caution" | "callout"
            )
        });
    let style: String = attr(tag, "style")
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_lowercase();
    let hidden = style.contains("display:none") || attr(tag, "hidden").is_some();
    match (note, hidden) {
        (true, true) => Entered::NoteHidden,
        (true, false) => Entered::Note,
        (false, true) => Entered::Hidden,
        (false, false) => Entered::Nothing,
    }
}

impl State {
    fn start(&mut self, tag: &Tag, line: usize) -> TokenSinkResult<()> {
        let name = &*tag.name;
        if SKIPPED.contains(&name) {
            if !tag.self_closing {
                self.skip += 1;
            }
            return match name {
                "script" => TokenSinkResult::RawData(RawKind::ScriptData),
                "style" | "noscript" => TokenSinkResult::RawData(RawKind::Rawtext),
                _ => TokenSinkResult::Continue,
            };
        }
        if name == "textarea" || name == "title" {
            self.skip += 1;
            return TokenSinkResult::RawData(RawKind::Rcdata);
        }
        if self.skip > 0 {
            return TokenSinkResult::Continue;
        }
        if let Some((lang, _, _)) = &mut self.pre {
            if name == "code" && lang.is_none() {
                *lang = lang_of(tag);
            } else if name == "br" {
                self.text("\n");
            }
            return TokenSinkResult::Continue;
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                let level = name[1..].parse().unwrap_or(6);
                self.heading = true;
                self.b.start_heading(level, line);
            }
            "ol" | "ul" => {
                let start = attr(tag, "start")
                    .and_then(|s| s.trim().parse().ok())
                    .unwrap_or(1);
                self.b.start_list(name == "ol", start);
                self.items.push(false);
            }
            "li" => {
                if self.items.last() == Some(&true) {
                    self.b.end_item(line);
                }
                if let Some(open) = self.items.last_mut() {
                    *open = true;
                    self.b.start_item(line);
                }
            }
            "p" => self.b.start_para(line),
            "br" => self.b.line_break(),
            "pre" => self.pre = Some((lang_of(tag), line, String::new())),
            "code" | "kbd" | "samp" => self.code = Some((line, String::new())),
            "div" | "blockquote" | "aside" | "section" => {
                let entered = box_kind(tag);
                if matches!(entered, Entered::Note | Entered::NoteHidden) {
                    self.b.enter_note();
                }
                if matches!(entered, Entered::Hidden | Entered::NoteHidden) {
                    self.b.enter_hidden();
                }
                if !tag.self_closing {
                    self.boxes.push((name.to_string(), entered));
                }
            }
            _ => {}
        }
        TokenSinkResult::Continue
    }

    fn end(&mut self, tag: &Tag, line: usize) {
        let name = &*tag.name;
        if SKIPPED.contains(&name) || name == "textarea" || name == "title" {
            self.skip = self.skip.saturating_sub(1);
            return;
        }
        if self.skip > 0 {
            return;
        }
        if name == "pre" {
            if let Some((lang, first, text)) = self.pre.take() {
                self.b.code_block(lang, text, first);
            }
            return;
        }
        if self.pre.is_some() {
            return;
        }
        match name {
            "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
                self.heading = false;
                self.b.end_heading();
            }
            "ol" | "ul" => {
                if self.items.pop() == Some(true) {
                    self.b.end_item(line);
                }
                self.b.end_list();
            }
            "li" => {
                if let Some(open) = self.items.last_mut() {
                    if *open {
                        *open = false;
                        self.b.end_item(line);
                    }
                }
            }
            "p" => self.b.end_para(),
            "code" | "kbd" | "samp" => {
                if let Some((l, text)) = self.code.take() {
                    self.b.inline_code(text.trim(), l);
                }
            }
            "div" | "blockquote" | "aside" | "section" => {
                if let Some(i) = self.boxes.iter().rposition(|(n, _)| n == name) {
                    for (_, entered) in self.boxes.split_off(i) {
                        if matches!(entered, Entered::Note | Entered::NoteHidden) {
                            self.b.leave_note();
                        }
                        if matches!(entered, Entered::Hidden | Entered::NoteHidden) {
                            self.b.leave_hidden();
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, s: &str) {
        if self.skip > 0 {
            return;
        }
        if let Some((_, _, text)) = &mut self.pre {
            text.push_str(s);
        } else if let Some((_, text)) = &mut self.code {
            text.push_str(s);
        } else {
            // Outside `<pre>`, HTML whitespace (newlines included) is one space.
            let mut collapsed = String::with_capacity(s.len());
            let mut space = false;
            for c in s.chars() {
                if c.is_ascii_whitespace() {
                    space = true;
                } else {
                    if space {
                        collapsed.push(' ');
                        space = false;
                    }
                    collapsed.push(c);
                }
            }
            if space {
                collapsed.push(' ');
            }
            self.b.text(&collapsed);
        }
    }
}

impl TokenSink for Sink {
    type Handle = ();

    fn process_token(&self, token: Token, line_number: u64) -> TokenSinkResult<()> {
        let line = usize::try_from(line_number).unwrap_or(usize::MAX);
        let mut st = self.0.borrow_mut();
        match token {
            Token::TagToken(tag) => match tag.kind {
                TagKind::StartTag => return st.start(&tag, line),
                TagKind::EndTag => st.end(&tag, line),
            },
            Token::CharacterTokens(t) => st.text(&t),
            _ => {}
        }
        TokenSinkResult::Continue
    }
}

/// The outline and the front matter's `title:` (Markdown-style front matter sits before the
/// HTML in documentation sources such as Milvus's).
pub fn outline(src: &Source) -> Result<(Vec<Block>, Option<String>), ImportError> {
    let sink = Sink(RefCell::new(State::default()));
    let tokenizer = Tokenizer::new(sink, TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(&src.text));
    while let TokenizerResult::Script(()) = tokenizer.feed(&input) {}
    tokenizer.end();
    let state = tokenizer.sink.0.into_inner();
    if let Some((_, line, _)) = state.pre {
        return Err(ImportError::Malformed {
            file: src.path.clone(),
            line,
            col: 1,
            message: "this <pre> block is never closed: everything after it would be read as \
                      one command; close it with </pre>"
                .into(),
        });
    }
    Ok((state.b.finish(), front_matter_title(&src.text)))
}

fn front_matter_title(text: &str) -> Option<String> {
    let rest = text.strip_prefix("---\n")?;
    let end = rest.find("\n---")?;
    rest[..end].lines().find_map(|l| {
        l.strip_prefix("title:")
            .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
    })
}
