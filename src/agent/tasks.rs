//! The agent's task list (`task_tracker`): kept across steps, rendered for the model.

use crate::events::{Observation, ObservationKind, TaskItem, TaskTrackingArgs, TaskTrackingExtras};

/// The current task list; `plan` replaces it, `view` shows it.
#[derive(Debug, Default)]
pub(super) struct TaskList {
    items: Vec<TaskItem>,
}

impl TaskList {
    /// Takes in a stored `task_tracking` action (when rebuilding from the history).
    pub fn restore(&mut self, args: &TaskTrackingArgs) {
        if args.command == "plan" {
            self.items = args.task_list.clone();
        }
    }

    /// Carries out a `task_tracking` action: its observation, with the list after it.
    pub fn apply(&mut self, args: &TaskTrackingArgs) -> Observation {
        self.restore(args);
        Observation {
            content: render(&self.items, &args.command),
            kind: ObservationKind::TaskTracking(TaskTrackingExtras {
                command: args.command.clone(),
                task_list: self.items.clone(),
            }),
        }
    }
}

/// The list as the model reads it: one numbered line per task with its status mark.
fn render(tasks: &[TaskItem], command: &str) -> String {
    if tasks.is_empty() {
        return "No tasks in the list. Use the plan command to create one.".into();
    }
    let mut out = if command == "plan" {
        format!("Task list has been updated with {} items.\n", tasks.len())
    } else {
        String::from("Current task list:\n")
    };
    for (i, t) in tasks.iter().enumerate() {
        let mark = match t.status.as_str() {
            "done" => "[x]",
            "in_progress" => "[~]",
            _ => "[ ]",
        };
        out.push_str(&format!("{}. {mark} {}", i + 1, t.title));
        if !t.notes.is_empty() {
            out.push_str(&format!(" ({})", t.notes));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str, status: &str, notes: &str) -> TaskItem {
        TaskItem {
            id: title.into(),
            title: title.into(),
            status: status.into(),
            notes: notes.into(),
        }
    }

    fn args(command: &str, task_list: Vec<TaskItem>) -> TaskTrackingArgs {
        TaskTrackingArgs {
            command: command.into(),
            task_list,
            thought: String::new(),
        }
    }

    #[test]
    fn plan_replaces_the_list_and_marks_each_status() {
        let mut list = TaskList::default();
        let plan = args(
            "plan",
            vec![
                item("write", "done", ""),
                item("test", "in_progress", "unit"),
                item("ship", "todo", ""),
            ],
        );
        let obs = list.apply(&plan);
        assert_eq!(
            obs.content,
            "Task list has been updated with 3 items.\n1. [x] write\n2. [~] test (unit)\n3. [ ] ship\n"
        );
        let ObservationKind::TaskTracking(extras) = obs.kind else {
            panic!("not a task_tracking observation: {obs:?}");
        };
        assert_eq!(extras.command, "plan");
        assert_eq!(extras.task_list.len(), 3);
    }

    #[test]
    fn view_shows_the_current_list_without_changing_it() {
        let mut list = TaskList::default();
        list.restore(&args("plan", vec![item("write", "todo", "")]));
        let obs = list.apply(&args("view", vec![item("ignored", "done", "")]));
        assert_eq!(obs.content, "Current task list:\n1. [ ] write\n");
    }

    #[test]
    fn an_empty_list_says_how_to_make_one() {
        let obs = TaskList::default().apply(&args("view", Vec::new()));
        assert_eq!(
            obs.content,
            "No tasks in the list. Use the plan command to create one."
        );
    }
}
