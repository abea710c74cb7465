//! Telling a session joined over a socket which node rows are on screen (a [`Viewport`]): it
//! then sends the live samples of those nodes only.
//!
//! The rows come from the frame just drawn (`render::draw` counts them), so nothing is laid
//! out twice; the list of names is rebuilt and compared only when what decides it changed
//! (how many rows the panel had room for, how many nodes there are). What is said stays within
//! the server's bounds (`pairing::protocol::check_viewport`), which refuses the whole message
//! otherwise and keeps the viewport it had: the first [`MAX_VIEWPORT_NODES`] rows, and no name
//! longer than [`MAX_VIEWPORT_NAME`] bytes (it could not name a node anyway). Cutting one is
//! logged.

use tokio::sync::watch;

use super::view::View;
use crate::engine::client::Viewport;
use crate::pairing::protocol::{MAX_VIEWPORT_NAME, MAX_VIEWPORT_NODES};

/// What the cockpit last told the session it shows.
#[derive(Debug, Default)]
pub struct ViewportTeller {
    /// (rows the panel had room for and filled, nodes in the session) when last said.
    said_for: Option<(usize, usize)>,
}

impl ViewportTeller {
    /// After a frame that drew `rows` node rows: tell the session what it shows, if that may
    /// have changed. Returns whether the viewport was worked out again (for tests: nothing is
    /// done for a frame like the last).
    pub fn after_frame(
        &mut self,
        tx: &watch::Sender<Option<Viewport>>,
        view: &View,
        rows: usize,
    ) -> bool {
        let nodes = &view.state.nodes;
        let key = (rows.min(nodes.len()), nodes.len());
        if self.said_for == Some(key) {
            return false;
        }
        self.said_for = Some(key);
        let shown = nodes.iter().take(key.0).map(|n| n.node.name.as_str());
        let viewport = bounded(shown);
        tx.send_if_modified(|said| {
            if said.as_ref() == Some(&viewport) {
                return false;
            }
            *said = Some(viewport);
            true
        });
        true
    }
}

/// The viewport of the rows `shown`, cut to what the session's server takes.
fn bounded<'a>(shown: impl ExactSizeIterator<Item = &'a str>) -> Viewport {
    let rows = shown.len();
    let mut too_long = 0usize;
    let nodes: Vec<String> = shown
        .take(MAX_VIEWPORT_NODES)
        .filter(|n| {
            let fits = n.len() <= MAX_VIEWPORT_NAME;
            too_long += usize::from(!fits);
            fits
        })
        .map(str::to_string)
        .collect();
    if rows > MAX_VIEWPORT_NODES {
        tracing::warn!(
            rows,
            sent = MAX_VIEWPORT_NODES,
            "the screen shows more node rows than a viewport may name: live samples only for \
             the first ones"
        );
    }
    if too_long > 0 {
        tracing::warn!(
            names = too_long,
            max_bytes = MAX_VIEWPORT_NAME,
            "node names too long for a viewport left out of it: no live samples for those rows"
        );
    }
    Viewport { nodes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Event, Stamped};
    use crate::pairing::protocol::check_viewport;
    use crate::tui::view::TuiRole;

    /// A session on these nodes, from the generic lab journal's start.
    fn view_of(names: &[String]) -> View {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/lab-generic-rolling.jsonl"
        );
        let text = std::fs::read_to_string(path).expect("fixture journal");
        let line = text.lines().nth(1).expect("a session_started line");
        let mut first: Stamped = serde_json::from_str(line).expect("session_started");
        let Event::SessionStarted { nodes, .. } = &mut first.event else {
            panic!("the fixture's first event is not session_started");
        };
        let template = nodes[0].clone();
        *nodes = names
            .iter()
            .map(|n| crate::target::Node {
                name: n.clone(),
                ..template.clone()
            })
            .collect();
        View::from_events(TuiRole::Observer, "test", 2, [&first])
    }

    #[test]
    fn a_viewport_is_worked_out_again_only_when_the_rows_change() {
        let names: Vec<String> = (1..=40).map(|i| format!("node{i:02}")).collect();
        let view = view_of(&names);
        let (tx, mut rx) = watch::channel(None);
        let mut teller = ViewportTeller::default();
        assert!(teller.after_frame(&tx, &view, 12));
        let said = rx.borrow_and_update().clone().expect("a viewport");
        assert_eq!(said.nodes, names[..12].to_vec());
        // The next frames, same rows: nothing is built, nothing sent.
        assert!(!teller.after_frame(&tx, &view, 12));
        assert!(!rx.has_changed().unwrap_or(true));
        // Room for more rows than there are nodes: all of them, said once.
        assert!(teller.after_frame(&tx, &view, 60));
        assert_eq!(rx.borrow().as_ref().map(|v| v.nodes.len()), Some(40));
        assert!(!teller.after_frame(&tx, &view, 70));
    }

    #[test]
    fn an_oversized_viewport_is_cut_to_what_the_server_takes() {
        let mut names: Vec<String> = (1..=300).map(|i| format!("node{i:03}")).collect();
        names[3] = "n".repeat(MAX_VIEWPORT_NAME + 1);
        let view = view_of(&names);
        let (tx, rx) = watch::channel(None);
        let mut teller = ViewportTeller::default();
        assert!(teller.after_frame(&tx, &view, 300));
        let said = rx.borrow().clone().expect("a viewport");
        // What the server would have refused whole is now taken.
        assert_eq!(check_viewport(&said), Ok(()));
        // The first rows but the long name, which cannot name a node within the bound.
        let mut want: Vec<String> = names[..MAX_VIEWPORT_NODES].to_vec();
        want.remove(3);
        assert_eq!(said.nodes, want);
    }
}
