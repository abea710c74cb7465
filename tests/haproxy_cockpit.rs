//! The cockpit's load-balancer panel over HAProxy's view: check status shown when a check
//! fails, and the balancer's disagreements with the procedure flagged.

use flightdeck::engine::event::Event;
use flightdeck::lb::Backend;
use flightdeck::procedure::model::Membership;
use flightdeck::tui::demo::{self, Script};
use flightdeck::tui::render::to_text;
use flightdeck::tui::theme::Theme;
use flightdeck::tui::view::{TuiRole, View};

fn backend(node: &str, membership: Membership, health: &str, check: &str) -> Backend {
    Backend {
        server: format!("{node}-srv"),
        node: Some(node.into()),
        membership,
        health: health.into(),
        serving: membership == Membership::Ready && health.starts_with("UP"),
        sessions: Some(3),
        weight: Some(100),
        check: Some(check.into()),
    }
}

/// jahia1 was drained and put back by the procedure; HAProxy says it is down.
fn scene(backends: Vec<Backend>) -> View {
    let mut s = Script::started();
    s.through(demo::STEP_READY1 + 1);
    s.push(
        200,
        Event::LbChanged {
            backends,
            error: None,
        },
    );
    View::from_events(TuiRole::Driver, "flightdeck · lab-jahia", 1, s.events())
}

fn lb_rows(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.split('│').nth(3))
        .filter(|cell| !cell.trim().is_empty())
        .collect()
}

#[test]
fn a_ready_server_haproxy_reports_down_is_flagged() {
    let v = scene(vec![
        backend("jahia1", Membership::Ready, "DOWN", "L4CON"),
        backend("jahia2", Membership::Ready, "UP 1/2", "L7STS"),
        backend("jahia3", Membership::Ready, "UP", "L7OK"),
    ]);
    let text = to_text(&v, &Theme::dark(), 100, 30);
    assert!(text.contains("! 1 mismatch"), "{text}");
    let rows = lb_rows(&text);
    let jahia1 = rows.iter().find(|r| r.contains("jahia1-srv")).unwrap();
    assert!(jahia1.starts_with('!'), "{jahia1:?}");
    // A failing check: its status is shown.
    assert!(
        jahia1.contains("DOWN") && jahia1.contains("L4CON"),
        "{jahia1}"
    );
    let jahia2 = rows.iter().find(|r| r.contains("jahia2-srv")).unwrap();
    assert!(
        jahia2.starts_with(' ') && jahia2.contains("UP↓"),
        "{jahia2}"
    );

    // With room, the disagreement is spelled out.
    let text = to_text(&v, &Theme::dark(), 120, 40);
    assert!(
        text.contains("! jahia1-srv: set ready, LB says DOWN (L4CON)"),
        "{text}"
    );
}

#[test]
fn membership_changed_behind_the_procedure_is_flagged() {
    let v = scene(vec![
        backend("jahia1", Membership::Maint, "MAINT", ""),
        backend("jahia2", Membership::Drain, "UP", "L7OK"),
        backend("jahia3", Membership::Ready, "UP", "L7OK"),
    ]);
    let text = to_text(&v, &Theme::dark(), 120, 40);
    // jahia2 was never touched by the procedure: its drain is not a mismatch.
    assert!(text.contains("! 1 mismatch"), "{text}");
    assert!(
        text.contains("! jahia1-srv: set ready, LB says maint"),
        "{text}"
    );
    assert!(!text.contains("! jahia2"), "{text}");
}

#[test]
fn agreement_shows_no_flag() {
    let v = scene(vec![
        backend("jahia1", Membership::Ready, "UP", "L7OK"),
        backend("jahia2", Membership::Ready, "UP", "L7OK"),
        backend("jahia3", Membership::Ready, "UP", "L7OK"),
    ]);
    for (w, h) in [(80, 24), (100, 30), (120, 40)] {
        let text = to_text(&v, &Theme::dark(), w, h);
        assert!(!text.contains("mismatch"), "{text}");
        assert!(lb_rows(&text).iter().all(|r| !r.starts_with('!')), "{text}");
    }
}
