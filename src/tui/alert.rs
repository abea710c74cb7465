//! Alerts for an operator looking at another window: the terminal bell and the terminal title
//! (`step 14/36 · waiting for you`, `FAILED step 14`, `done`) when a prompt opens for this
//! cockpit's driver, when a step fails, and when the session finishes. Pure: the run loop asks
//! [`Alerter::check`] after each burst of events and writes what it returns.

use std::io::{self, Write};

use crate::engine::event::Outcome;
use crate::engine::state::{Mode, PromptKindTag};

use super::view::{TuiRole, View};

/// What alerts this cockpit gives (`--alerts`, `FLIGHTDECK_ALERTS`: `bell`, `title`, both
/// comma-separated, or `none`). A replay never alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertConfig {
    pub bell: bool,
    pub title: bool,
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            bell: true,
            title: true,
        }
    }
}

impl AlertConfig {
    pub const NONE: AlertConfig = AlertConfig {
        bell: false,
        title: false,
    };

    /// `bell,title`, `bell`, `title` or `none`.
    pub fn parse(s: &str) -> Result<AlertConfig, String> {
        let mut c = AlertConfig::NONE;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "bell" => c.bell = true,
                "title" => c.title = true,
                "none" | "off" => {}
                other => return Err(format!("unknown alert `{other}` (bell, title, or none)")),
            }
        }
        Ok(c)
    }
}

/// One alert: the title to set and whether to ring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub title: String,
    pub bell: bool,
}

/// What the last alert was about, so each moment alerts once.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Moment {
    Prompt(u64),
    Failed(u64),
    Finished,
    Quiet,
}

#[derive(Debug, Clone)]
pub struct Alerter {
    config: AlertConfig,
    last: Moment,
    /// The nodes down with no step to explain it, as last written: (node, when it went down).
    unexpected: Vec<(String, u64)>,
}

impl Alerter {
    pub fn new(config: AlertConfig, role: TuiRole) -> Self {
        let config = if role == TuiRole::Replay {
            AlertConfig::NONE
        } else {
            config
        };
        Alerter {
            config,
            last: Moment::Quiet,
            unexpected: Vec::new(),
        }
    }

    /// The alert the view calls for now, once per moment (a new prompt, a failure, the end,
    /// a node going down unexpectedly). A node down with no step to explain it (a crash
    /// mid-run) rings once and leads the title for as long as it stays down
    /// (`UNEXPECTED: node3 failed · step 7/23 · waiting for you`): an operator glancing at
    /// the title later still sees it.
    pub fn check(&mut self, view: &View) -> Option<Alert> {
        if self.config == AlertConfig::NONE {
            return None;
        }
        let st = &view.state;
        let down: Vec<(&str, &str, u64)> = st
            .nodes
            .iter()
            .filter(|n| n.unexpectedly_down())
            .filter_map(|n| {
                let change = n.state_change.as_ref()?;
                Some((
                    n.node.name.as_str(),
                    n.state().unwrap_or("down"),
                    change.t_ms,
                ))
            })
            .collect();
        let unexpected: Vec<(String, u64)> = down
            .iter()
            .map(|(node, _, t)| (node.to_string(), *t))
            .collect();
        let newly_down = unexpected.iter().any(|k| !self.unexpected.contains(k));
        let total = st.steps.len();
        let (moment, what) = match (st.mode, st.prompt) {
            (Mode::Finished(outcome), _) => (
                Moment::Finished,
                match outcome {
                    Outcome::Completed => "done".to_string(),
                    // The same words as the finish line and the report.
                    _ => crate::engine::outcome::outcome_text(st),
                },
            ),
            (_, Some(p))
                if matches!(p.kind, PromptKindTag::Failed | PromptKindTag::Interrupted) =>
            {
                (Moment::Failed(p.id), format!("FAILED step {}", p.step + 1))
            }
            // A prompt rings only the driver: an observer cannot answer it.
            (_, Some(p)) if view.effective_role() == TuiRole::Driver => (
                Moment::Prompt(p.id),
                format!("step {}/{total} · waiting for you", p.step + 1),
            ),
            // Nothing waits: the title goes back to plain progress, without a bell.
            _ => (
                Moment::Quiet,
                format!("step {}/{total}", view.active_step().map_or(0, |s| s + 1)),
            ),
        };
        if moment == self.last && unexpected == self.unexpected {
            return None;
        }
        let bell =
            self.config.bell && (newly_down || (moment != self.last && moment != Moment::Quiet));
        self.last = moment;
        self.unexpected = unexpected;
        let title = if self.config.title {
            let crashes: Vec<String> = down
                .iter()
                .map(|(node, state, _)| format!("{node} {state}"))
                .collect();
            if crashes.is_empty() {
                format!("flightdeck · {what}")
            } else {
                format!("flightdeck · UNEXPECTED: {} · {what}", crashes.join(", "))
            }
        } else {
            String::new()
        };
        (bell || !title.is_empty()).then_some(Alert { title, bell })
    }
}

/// Write an alert to the terminal: OSC 0 sets the title (an empty one is left alone), BEL
/// rings. The title carries outside words (node names, a product's failure reason in the
/// outcome) inside an OSC that crossterm writes as is: cleaned to one line without controls,
/// a BEL or ESC in them cannot end the title early and have the rest acted on.
pub fn write_alert(out: &mut impl Write, alert: &Alert) -> io::Result<()> {
    if !alert.title.is_empty() {
        let title = crate::terminal_text::one_line(&alert.title);
        crossterm::execute!(out, crossterm::terminal::SetTitle(&title))?;
    }
    if alert.bell {
        out.write_all(b"\x07")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{Event, PromptKind, Verdict};
    use crate::tui::demo::{self, Script};

    fn view(s: &Script, role: TuiRole) -> View {
        View::from_events(role, "t", 1, s.events())
    }

    #[test]
    fn a_node_down_with_no_step_to_explain_it_alerts_once_as_unexpected() {
        let mut a = Alerter::new(AlertConfig::default(), TuiRole::Driver);
        let mut s = Script::started();
        for n in demo::NODES {
            s.facts(n, &[("state", "running")]);
        }
        s.through(demo::STEP_BACKUP);
        let _ = a.check(&view(&s, TuiRole::Driver));
        // Long after the last step: nothing the procedure did explains it.
        s.push(
            60_000,
            Event::NodeFacts {
                node: "jahia3".into(),
                facts: [("state".to_string(), "failed".to_string())].into(),
                prior_sent_ms: None,
            },
        );
        let v = view(&s, TuiRole::Driver);
        assert_eq!(
            a.check(&v),
            Some(Alert {
                title: format!(
                    "flightdeck · UNEXPECTED: jahia3 failed · step {}/16",
                    demo::STEP_BACKUP + 1
                ),
                bell: true
            })
        );
        assert_eq!(a.check(&v), None, "once");
        // A prompt while it is still down: the title keeps the crash, the prompt rings.
        s.prompt(demo::STEP_BACKUP, PromptKind::Run);
        assert_eq!(
            a.check(&view(&s, TuiRole::Driver)),
            Some(Alert {
                title: format!(
                    "flightdeck · UNEXPECTED: jahia3 failed · step {}/16 · waiting for you",
                    demo::STEP_BACKUP + 1
                ),
                bell: true
            })
        );
        // Back up: the title drops it, without a bell.
        s.facts("jahia3", &[("state", "running")]);
        let up = a.check(&view(&s, TuiRole::Driver)).unwrap();
        assert!(!up.title.contains("UNEXPECTED"), "{}", up.title);
        assert!(!up.bell);
    }

    #[test]
    fn a_prompt_a_failure_and_the_end_each_alert_once() {
        let mut a = Alerter::new(AlertConfig::default(), TuiRole::Driver);
        let mut s = Script::started();
        s.through(demo::STEP_BACKUP);
        assert_eq!(
            a.check(&view(&s, TuiRole::Driver)),
            None,
            "nothing waits yet"
        );
        s.prompt(demo::STEP_BACKUP, PromptKind::Run);
        let v = view(&s, TuiRole::Driver);
        assert_eq!(
            a.check(&v),
            Some(Alert {
                title: "flightdeck · step 3/16 · waiting for you".into(),
                bell: true
            })
        );
        assert_eq!(a.check(&v), None, "the same prompt alerts once");
        s.push(
            10,
            Event::Confirmed {
                step: demo::STEP_BACKUP,
                by: "alice".into(),
                auto: false,
            },
        );
        s.start(demo::STEP_BACKUP);
        let quiet = a.check(&view(&s, TuiRole::Driver)).unwrap();
        assert_eq!(quiet.title, "flightdeck · step 3/16");
        assert!(!quiet.bell, "back to work: no bell");
        s.finish(demo::STEP_BACKUP, Verdict::Failed, "exit 1");
        s.prompt(demo::STEP_BACKUP, PromptKind::Failed);
        let failed = a.check(&view(&s, TuiRole::Driver)).unwrap();
        assert_eq!(failed.title, "flightdeck · FAILED step 3");
        assert!(failed.bell);
        s.push(
            10,
            Event::Finished {
                outcome: Outcome::Completed,
            },
        );
        assert_eq!(
            a.check(&view(&s, TuiRole::Driver)).map(|a| a.title),
            Some("flightdeck · done".into())
        );
    }

    #[test]
    fn configurable_and_silent_in_replay_and_for_an_observer_at_a_prompt() {
        let mut s = Script::started();
        s.through(demo::STEP_BACKUP);
        s.prompt(demo::STEP_BACKUP, PromptKind::Run);
        let mut replay = Alerter::new(AlertConfig::default(), TuiRole::Replay);
        assert_eq!(replay.check(&view(&s, TuiRole::Replay)), None);
        // bob (id 2) watches: the prompt is not his to answer.
        let mut obs = Alerter::new(AlertConfig::default(), TuiRole::Observer);
        let v = View::from_events(TuiRole::Observer, "t", 2, s.events());
        assert_eq!(obs.check(&v), None);
        let mut title_only = Alerter::new(AlertConfig::parse("title").unwrap(), TuiRole::Driver);
        assert_eq!(
            title_only.check(&view(&s, TuiRole::Driver)).map(|a| a.bell),
            Some(false)
        );
        assert_eq!(AlertConfig::parse("none"), Ok(AlertConfig::NONE));
        assert_eq!(AlertConfig::parse("bell,title"), Ok(AlertConfig::default()));
        assert!(AlertConfig::parse("siren").is_err());
    }

    #[test]
    fn writes_osc_title_and_bel() {
        let mut out = Vec::new();
        write_alert(
            &mut out,
            &Alert {
                title: "flightdeck · done".into(),
                bell: true,
            },
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\x1b]0;flightdeck · done\x07"), "{text:?}");
        assert!(text.ends_with('\x07'));
    }

    #[test]
    fn outside_words_cannot_end_the_title_early() {
        let mut out = Vec::new();
        let reason = "node1: \x07\x1b]52;c;Y2xpcA==\x07\x1b[2J\u{9d}2;x\u{9c}gone";
        let alert = Alert {
            title: format!("flightdeck · FAILED: {reason}"),
            bell: false,
        };
        write_alert(&mut out, &alert).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "\x1b]0;flightdeck · FAILED: node1: gone\x07");
    }
}
