//! Faults staged for a run on the lab (`run --lab --fault KIND:NODE[@step=N|@undo=N]`): parsed
//! once at the command line, then checked against the lab's nodes and the plan's steps before
//! anything runs. A fault without `@step=` is in force from the lab's start (as `flightdeck lab
//! --fault`); one with `@step=N` takes effect when step N (its number in the plan, 1-based, or
//! its key such as `start@node2`) starts; one with `@undo=N` when step N's undo starts — only a
//! rollback (or a single undo) sets it off, so it breaks the way back and nothing before it.

use std::fmt;
use std::str::FromStr;

use super::faults::Fault;
use super::LabError;
use crate::plan::Plan;

/// Which step a staged fault waits for, as the operator wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepRef {
    /// The step's number in the plan, as the cockpit and `plan` show it (1-based).
    Number(usize),
    /// The step's key (`backup`, `start@node2`).
    Key(String),
}

impl fmt::Display for StepRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepRef::Number(n) => write!(f, "{n}"),
            StepRef::Key(k) => f.write_str(k),
        }
    }
}

/// One `--fault` of a lab run.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub fault: Fault,
    /// None: in force from the lab's start.
    pub at: Option<StepRef>,
    /// `@undo=`: when the step's undo starts, not its action.
    pub undo: bool,
}

impl FromStr for FaultSpec {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        // `@` cannot occur in a fault itself; a step key may contain one (`start@node2`).
        let (fault, at, undo) = match s.split_once('@') {
            None => (s, None, false),
            Some((fault, rest)) => {
                let (step, undo) = match (rest.strip_prefix("step="), rest.strip_prefix("undo=")) {
                    (Some(step), _) => (step, false),
                    (None, Some(step)) => (step, true),
                    (None, None) => {
                        return Err(LabError::Config(format!(
                            "bad fault {s:?}: expected KIND:NODE@step=N (or @undo=N) after the \
                             fault"
                        )))
                    }
                };
                let step = step.trim();
                if step.is_empty() {
                    return Err(LabError::Config(format!(
                        "bad fault {s:?}: the step after @step= or @undo= is missing"
                    )));
                }
                let at = match step.parse::<usize>() {
                    Ok(0) => {
                        return Err(LabError::Config(format!(
                            "bad fault {s:?}: steps are numbered from 1"
                        )))
                    }
                    Ok(n) => StepRef::Number(n),
                    Err(_) => StepRef::Key(step.to_string()),
                };
                (fault, Some(at), undo)
            }
        };
        Ok(FaultSpec {
            fault: fault.parse()?,
            at,
            undo,
        })
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            None => write!(f, "{}", self.fault),
            Some(at) if self.undo => write!(f, "{}@undo={at}", self.fault),
            Some(at) => write!(f, "{}@step={at}", self.fault),
        }
    }
}

impl FaultSpec {
    /// Refuses a fault about a node the lab does not have.
    pub fn check_node(&self, nodes: &[String]) -> Result<(), LabError> {
        match self.fault.node() {
            Some(n) if !nodes.iter().any(|m| m == n) => Err(LabError::Config(format!(
                "fault {self}: the lab has no node {n:?} (it has {})",
                nodes.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// The plan index (0-based) of the step this fault waits for; None when it is in force
    /// from the start. Refuses a step the plan does not have.
    pub fn resolve_step(&self, plan: &Plan) -> Result<Option<usize>, LabError> {
        let Some(at) = &self.at else { return Ok(None) };
        let found = match at {
            StepRef::Number(n) => n.checked_sub(1).filter(|i| *i < plan.steps.len()),
            StepRef::Key(k) => plan.steps.iter().position(|s| s.key == *k),
        };
        found.map(Some).ok_or_else(|| {
            LabError::Config(format!(
                "fault {self}: the plan has no step {at} (steps 1 to {}, or a key such as {:?})",
                plan.steps.len(),
                plan.steps
                    .first()
                    .map(|s| s.key.as_str())
                    .unwrap_or("backup")
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_number_or_key_follows_the_fault() {
        let f: FaultSpec = "crash:node2@step=12".parse().unwrap();
        assert_eq!(f.at, Some(StepRef::Number(12)));
        assert_eq!(f.fault.to_string(), "crash:node2");
        assert_eq!(f.to_string(), "crash:node2@step=12");
        let f: FaultSpec = "never-ready:node1@step=start@node1".parse().unwrap();
        assert_eq!(f.at, Some(StepRef::Key("start@node1".into())));
        let f: FaultSpec = "slow:node1:500ms".parse().unwrap();
        assert_eq!(f.at, None);
        assert_eq!(f.to_string(), "slow:node1:500ms");
        let f: FaultSpec = "deny-writes:node2@undo=start@node2".parse().unwrap();
        assert_eq!(f.at, Some(StepRef::Key("start@node2".into())));
        assert!(f.undo);
        assert_eq!(f.to_string(), "deny-writes:node2@undo=start@node2");
        assert!(!"crash:node2@step=3".parse::<FaultSpec>().unwrap().undo);
    }

    #[test]
    fn nonsense_is_refused_with_what_was_expected() {
        for (s, why) in [
            ("crash:node2@12", "expected KIND:NODE@step=N"),
            ("crash:node2@step=", "missing"),
            ("crash:node2@undo=", "missing"),
            ("crash:node2@redo=3", "or @undo=N"),
            ("crash:node2@step=0", "numbered from 1"),
            ("boom:node2@step=3", "unknown kind"),
            ("crash@step=3", "node name is missing"),
        ] {
            let e = s.parse::<FaultSpec>().unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn unknown_nodes_and_steps_are_named() {
        let nodes = vec!["node1".to_string(), "node2".to_string()];
        let f: FaultSpec = "crash:node9@step=1".parse().unwrap();
        let e = f.check_node(&nodes).unwrap_err().to_string();
        assert!(
            e.contains("no node \"node9\"") && e.contains("node1, node2"),
            "{e}"
        );
        assert!("no-sync@step=1"
            .parse::<FaultSpec>()
            .unwrap()
            .check_node(&nodes)
            .is_ok());
        let plan = Plan::default();
        let f: FaultSpec = "crash:node1@step=3".parse().unwrap();
        let e = f.resolve_step(&plan).unwrap_err().to_string();
        assert!(e.contains("no step 3"), "{e}");
        let f: FaultSpec = "crash:node1".parse().unwrap();
        assert_eq!(f.resolve_step(&plan).unwrap(), None);
    }
}
