//! Supervision-tree introspection snapshots.
//!
//! The admin API and `fudo ctl` show the live tree: every supervisor and child, its status,
//! generation, restart count and queue depth. Supervisors build [`TreeNode`]s on request
//! (`SupervisorMsg::Tree`), asking nested supervisors for their subtrees.

use serde::Serialize;

/// A child's status as shown in the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildStatus {
    /// Alive.
    Running,
    /// Stopped by a restart plan and about to be started again (possibly after a backoff).
    Restarting,
    /// Exited normally and not restarted.
    Stopped,
    /// Exited abnormally and not restarted, or unreachable when asked for its subtree.
    Failed,
}

/// One node of the supervision tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TreeNode {
    /// Registered actor name.
    pub name: String,
    /// Kind (`"supervisor"`, `"router"`, `"shard"`, ...).
    pub kind: String,
    /// Status.
    pub status: ChildStatus,
    /// Generation of the current incarnation (0 if never started; unknown (0) for a root).
    pub generation: u64,
    /// Restarts of this child by its supervisor.
    pub restarts: u64,
    /// Queue depth, when the child has a probe.
    pub queue_depth: Option<u64>,
    /// Children (for supervisors), in start order.
    pub children: Vec<TreeNode>,
}

impl TreeNode {
    /// Finds the node named `name` in this subtree (depth first).
    pub fn find(&self, name: &str) -> Option<&TreeNode> {
        if self.name == name {
            return Some(self);
        }
        self.children.iter().find_map(|c| c.find(name))
    }

    /// The number of nodes in this subtree, this one included.
    pub fn len(&self) -> usize {
        1 + self.children.iter().map(TreeNode::len).sum::<usize>()
    }

    /// Always `false`: a tree has at least its root.
    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(name: &str) -> TreeNode {
        TreeNode {
            name: name.into(),
            kind: "shard".into(),
            status: ChildStatus::Running,
            generation: 1,
            restarts: 0,
            queue_depth: Some(3),
            children: vec![],
        }
    }

    #[test]
    fn find_and_len_walk_the_tree() {
        let root = TreeNode {
            name: "node".into(),
            kind: "supervisor".into(),
            status: ChildStatus::Running,
            generation: 0,
            restarts: 0,
            queue_depth: None,
            children: vec![leaf("a"), leaf("b")],
        };
        assert_eq!(root.len(), 3);
        assert!(!root.is_empty());
        assert_eq!(root.find("b").map(|n| n.queue_depth), Some(Some(3)));
        assert!(root.find("c").is_none());
    }

    #[test]
    fn serializes_with_snake_case_status() {
        let json = serde_json::to_value(leaf("a")).expect("serialize");
        assert_eq!(json["status"], "running");
        assert_eq!(json["queue_depth"], 3);
    }
}
