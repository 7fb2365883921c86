//! Restart strategies: which siblings are restarted together with a failed child.
//!
//! OTP's three strategies describe how children depend on each other. Under `one_for_one`
//! children are independent; under `one_for_all` each needs all the others (a failure restarts
//! the group); under `rest_for_one` each child depends on those started before it (a router
//! started before its shards, say), so a failure restarts the failed child and every child
//! started after it.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// How a supervisor reacts to one child's exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Restart only the child that exited.
    #[default]
    OneForOne,
    /// Stop every other child (reverse start order) and restart all (start order).
    OneForAll,
    /// Stop the children started after the failed one (reverse start order) and restart the
    /// failed child and those (start order).
    RestForOne,
}

impl Strategy {
    /// The children (as start-order indices into a list of `len`) affected when child `failed`
    /// must be restarted: the failed child itself and the siblings restarted with it.
    pub fn affected(self, failed: usize, len: usize) -> Range<usize> {
        match self {
            Self::OneForOne => failed..failed + 1,
            Self::OneForAll => 0..len,
            Self::RestForOne => failed..len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_for_one_affects_only_the_failed_child() {
        assert_eq!(Strategy::OneForOne.affected(2, 5), 2..3);
    }

    #[test]
    fn one_for_all_affects_every_child() {
        assert_eq!(Strategy::OneForAll.affected(2, 5), 0..5);
    }

    #[test]
    fn rest_for_one_affects_the_failed_child_and_later_ones() {
        assert_eq!(Strategy::RestForOne.affected(2, 5), 2..5);
        assert_eq!(Strategy::RestForOne.affected(4, 5), 4..5);
    }

    #[test]
    fn strategy_parses_from_snake_case() {
        let parsed: Strategy = serde_json::from_str("\"rest_for_one\"").expect("valid json");
        assert_eq!(parsed, Strategy::RestForOne);
    }
}
