//! Markdown (CommonMark with tables and YAML front matter) into the outline, with
//! `pulldown-cmark`. A plain-text runbook is read the same way: its `- ` lines are a list.

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

use super::outline::{Block, OutlineBuilder};
use super::source::Source;
use super::ImportError;

/// The outline and the front matter's `title:`, if any.
pub fn outline(src: &Source) -> Result<(Vec<Block>, Option<String>), ImportError> {
    let text = src.text.as_str();
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_STRIKETHROUGH;
    let mut b = OutlineBuilder::default();
    let mut title = None;
    let mut in_meta = false;
    // Docusaurus admonitions (`:::tip Scenario` ... `:::`) are not Markdown: their opening line
    // reads as a paragraph, taken here as a heading one level below the current one.
    let mut last_level = 1u8;
    let mut para_start: Option<(usize, String)> = None;
    let mut code: Option<(Option<String>, usize, String, std::ops::Range<usize>)> = None;
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        let line = src.line_of(range.start);
        match event {
            Event::Start(Tag::MetadataBlock(_)) => in_meta = true,
            Event::End(TagEnd::MetadataBlock(_)) => in_meta = false,
            Event::Text(t) if in_meta => {
                title = t.lines().find_map(|l| {
                    l.strip_prefix("title:")
                        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
                });
            }
            Event::Start(Tag::Heading { level, .. }) => {
                last_level = heading_level(level);
                b.start_heading(last_level, line);
            }
            Event::End(TagEnd::Heading(_)) => b.end_heading(),
            Event::Start(Tag::BlockQuote(_)) => b.enter_note(),
            Event::End(TagEnd::BlockQuote(_)) => b.leave_note(),
            Event::Start(Tag::List(start)) => b.start_list(start.is_some(), start.unwrap_or(1)),
            Event::End(TagEnd::List(_)) => b.end_list(),
            Event::Start(Tag::Item) => b.start_item(line),
            Event::End(TagEnd::Item) => b.end_item(src.line_of(range.end.saturating_sub(1))),
            Event::Start(Tag::Paragraph) => {
                para_start = Some((line, String::new()));
                b.start_para(line);
            }
            Event::End(TagEnd::Paragraph) => {
                let admonition = para_start
                    .take()
                    .and_then(|(l, t)| admonition_title(&t).map(|title| (l, title)));
                match admonition {
                    Some((l, title)) if !b.in_item() => {
                        // The paragraph was the admonition's marker, not prose.
                        b.start_heading(last_level.saturating_add(1).min(6), l);
                        b.text(&title);
                        b.end_heading();
                    }
                    _ => b.end_para(),
                }
            }
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().map(str::to_string)
                    }
                    CodeBlockKind::Indented => None,
                };
                code = Some((lang, line, String::new(), range.clone()));
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((lang, line, body, range)) = code.take() {
                    check_fence_closed(src, &range)?;
                    // A fenced block's text starts on the line after its fence.
                    let first = if is_fence(&src.text[range.clone()]) {
                        line + 1
                    } else {
                        line
                    };
                    b.code_block(lang, body, first);
                }
            }
            Event::Text(t) => {
                if let Some((_, _, body, _)) = &mut code {
                    body.push_str(&t);
                } else {
                    if let Some((_, p)) = &mut para_start {
                        p.push_str(&t);
                    }
                    b.text(&t);
                }
            }
            Event::Code(c) => {
                if let Some((_, p)) = &mut para_start {
                    p.push_str(&c);
                }
                b.inline_code(&c, line);
            }
            Event::SoftBreak => {
                if let Some((_, p)) = &mut para_start {
                    p.push('\n');
                }
                b.text(" ");
            }
            Event::HardBreak => b.line_break(),
            Event::InlineHtml(h) if is_br(&h) => b.line_break(),
            // `<digital-factory-data>` in a plain-text runbook is a name, not a tag: kept.
            Event::InlineHtml(h) if !is_formatting_tag(&h) => b.text(&h),
            _ => {}
        }
    }
    Ok((b.finish(), title))
}

fn heading_level(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

fn is_br(html: &str) -> bool {
    let t = html.trim().to_ascii_lowercase();
    t == "<br>" || t == "<br/>" || t == "<br />"
}

/// Inline HTML that only formats text (dropped, its content stays); any other `<...>` is text.
fn is_formatting_tag(html: &str) -> bool {
    const TAGS: [&str; 16] = [
        "a", "b", "i", "u", "em", "strong", "span", "code", "kbd", "sup", "sub", "small", "mark",
        "img", "del", "s",
    ];
    let t = html.trim().trim_start_matches('<').trim_start_matches('/');
    let name: String = t
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    let after = t[name.len()..].chars().next();
    TAGS.contains(&name.as_str()) && matches!(after, Some(' ' | '>' | '/' | '\t' | '\n'))
}

/// `:::tip Scenario: 1.25 to 1.27` opens an admonition titled by the rest of its first line
/// (or by its kind when it has no title); a lone `:::` closes one and has no title.
fn admonition_title(para: &str) -> Option<String> {
    let first = para.lines().next()?.trim();
    let rest = first.strip_prefix(":::")?.trim();
    let (kind, title) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    if kind.is_empty() || !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    Some(if title.trim().is_empty() {
        kind.to_string()
    } else {
        title.trim().to_string()
    })
}

fn is_fence(block: &str) -> bool {
    let t = block.trim_start();
    t.starts_with("```") || t.starts_with("~~~")
}

/// A fenced block that is never closed runs to the end of the file in CommonMark, turning the
/// rest of the runbook into one "command": refused, at the fence that opened it.
fn check_fence_closed(src: &Source, range: &std::ops::Range<usize>) -> Result<(), ImportError> {
    let block = &src.text[range.clone()];
    if !is_fence(block) {
        return Ok(());
    }
    let opening = block.trim_start();
    let fence_char = opening.chars().next().unwrap_or('`');
    let fence_len = opening.chars().take_while(|&c| c == fence_char).count();
    let last = block.trim_end().lines().last().unwrap_or("").trim();
    let closed = block.trim_end().lines().count() > 1
        && last.len() >= fence_len
        && last.chars().all(|c| c == fence_char);
    if closed {
        Ok(())
    } else {
        let (line, col) = src.pos_of(range.start + (block.len() - opening.len()));
        Err(ImportError::Malformed {
            file: src.path.clone(),
            line,
            col,
            message: format!(
                "this code block (`{}`) is never closed: everything after it would be read as \
                 one command; close it with a line of `{}`",
                fence_char.to_string().repeat(fence_len),
                fence_char.to_string().repeat(fence_len)
            ),
        })
    }
}
