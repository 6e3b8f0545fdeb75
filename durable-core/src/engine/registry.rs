//! Registered workflows with their types erased: input and output travel as JSON, so one engine
//! runs workflows of any types and the command line can start them by name.

use std::collections::HashMap;
use std::sync::Arc;

use crate::host::{BoxFuture, Ctx, Host};
use crate::workflow::{Entry, Exit, Snapshot, StateError, Workflow, WorkflowFacts};

/// Where an erased run begins.
pub(crate) enum RawEntry<'a> {
    /// A new execution with its input as JSON.
    Start(&'a str),
    /// An execution resumed from its last checkpoint.
    Resume(Snapshot<'a>),
}

/// How an erased run ended.
pub(crate) enum RawExit {
    /// The function returned: its `Result` as JSON, and the error's message if it is an `Err`.
    Done {
        /// `{"Ok": ..}` or `{"Err": ..}`.
        output: String,
        /// The `Display` of the error, for an `Err`.
        error: Option<String>,
    },
    /// The execution waits; the host knows for what.
    Suspended,
    /// The host stopped the run.
    Interrupted,
    /// The stored state (or input) cannot be resumed, or a state cannot be stored.
    BadState(StateError),
}

/// A workflow as the engine sees it.
pub(crate) trait ErasedWorkflow: Send + Sync + 'static {
    /// The macro's facts.
    fn facts(&self) -> &'static WorkflowFacts;

    /// Whether `input` decodes to the workflow's parameters.
    fn check_input(&self, input: &str) -> Result<(), serde_json::Error>;

    /// Runs the workflow from `entry`.
    fn run<'a>(&'a self, ctx: &'a Ctx, host: &'a mut dyn Host, entry: RawEntry<'a>) -> BoxFuture<'a, RawExit>;
}

struct Registered<W>(W);

impl<W: Workflow> ErasedWorkflow for Registered<W> {
    fn facts(&self) -> &'static WorkflowFacts {
        self.0.facts()
    }

    fn check_input(&self, input: &str) -> Result<(), serde_json::Error> {
        serde_json::from_str::<W::Input>(input).map(drop)
    }

    fn run<'a>(&'a self, ctx: &'a Ctx, host: &'a mut dyn Host, entry: RawEntry<'a>) -> BoxFuture<'a, RawExit> {
        Box::pin(async move {
            let workflow = self.0.facts().name;
            let entry = match entry {
                RawEntry::Start(input) => match serde_json::from_str(input) {
                    Ok(input) => Entry::Start(input),
                    Err(source) => return RawExit::BadState(StateError::Corrupt { workflow, source }),
                },
                RawEntry::Resume(snapshot) => Entry::Resume(snapshot),
            };
            match self.0.run(ctx, host, entry).await {
                Exit::Done(result) => {
                    let error = result.as_ref().err().map(ToString::to_string);
                    match serde_json::to_string(&result) {
                        Ok(output) => RawExit::Done { output, error },
                        Err(source) => RawExit::BadState(StateError::Encode { workflow, point: "<result>", source }),
                    }
                }
                Exit::Suspended => RawExit::Suspended,
                Exit::Interrupted => RawExit::Interrupted,
                Exit::BadState(error) => RawExit::BadState(error),
            }
        })
    }
}

/// The workflows an engine runs, by name.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    workflows: HashMap<&'static str, Arc<dyn ErasedWorkflow>>,
}

impl Registry {
    /// Adds `workflow`; `Err(name)` if another workflow (another layout) has its name.
    /// Registering the same workflow twice is harmless.
    pub(crate) fn add<W: Workflow>(&mut self, workflow: W) -> Result<(), &'static str> {
        let facts = workflow.facts();
        if let Some(existing) = self.workflows.get(facts.name) {
            return if std::ptr::eq(existing.facts(), facts) { Ok(()) } else { Err(facts.name) };
        }
        self.workflows.insert(facts.name, Arc::new(Registered(workflow)));
        Ok(())
    }

    /// The workflow called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn ErasedWorkflow>> {
        self.workflows.get(name)
    }

    /// The facts of every registered workflow, in no particular order.
    pub(crate) fn facts(&self) -> impl Iterator<Item = &'static WorkflowFacts> + '_ {
        self.workflows.values().map(|workflow| workflow.facts())
    }

    /// Every registered name, sorted.
    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.workflows.keys().copied().collect();
        names.sort_unstable();
        names
    }
}
