//! What a cell needs of its stack, as the plan and the records of a run name it: the
//! setup before the cell, and what an endpoint does with its read→write window.

use serde::{Deserialize, Serialize};

/// What has to happen on a stack instance before a cell runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Setup {
    /// A fresh stack start: the instance's first cell, or a cell of another stack.
    Start,
    /// Services recreated because a variable they use changed, the database not among
    /// them.
    Restart,
    /// Services recreated, the database among them (a new, empty database to start).
    #[serde(rename = "restart_database")]
    RestartDatabase,
    /// Live changes only (Gunicorn's workers grown or shrunk in place).
    Live,
    /// Nothing: the previous cell's configuration serves.
    None,
}

/// What an endpoint does with a request's read→write window (`delay_ms`): how a burst's
/// windows add up. A stack may declare it per endpoint (`window:`); measured cells
/// correct it (the cost model's fit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// The windows overlap, as many at once as the stack has handlers: the model's
    /// rounds.
    #[default]
    Parallel,
    /// One after another whatever the handlers, e.g. each request waits for a row lock
    /// the one before holds across its window: rounds as if the stack had one handler.
    Serial,
    /// No window: the endpoint does not wait `delay_ms` (the burst costs its spacing).
    Ignored,
}

impl Setup {
    /// The setup that recreates `recreated` on `stack` (none: nothing to do).
    pub fn restart(stack: &crate::input::stack::Stack, recreated: &[String]) -> Setup {
        if recreated.is_empty() {
            Setup::None
        } else if recreated.contains(&stack.driver.database.service) {
            Setup::RestartDatabase
        } else {
            Setup::Restart
        }
    }
}

impl Shape {
    /// The three, in the order a tie between them is broken after the declared one.
    pub const ALL: [Shape; 3] = [Shape::Parallel, Shape::Serial, Shape::Ignored];

    /// The word a stack file and `plan` use.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Parallel => "parallel",
            Shape::Serial => "serial",
            Shape::Ignored => "ignored",
        }
    }
}
