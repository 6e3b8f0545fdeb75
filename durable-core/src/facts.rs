//! A workflow's static facts as data: what the engine stores so that tools (the `durable`
//! command line) can draw a workflow and name an execution's keys without its code.

use serde::{Deserialize, Serialize};

use crate::workflow::{Edge, Node, PointFacts, PointKind, WorkflowFacts};

/// An owned, serializable copy of a [`WorkflowFacts`]: its name, points, edges and layout
/// fingerprint. The engine stores one per workflow build (see
/// [`Store::register_workflow`](crate::Store::register_workflow)).
///
/// ```
/// use durable_core::prelude::*;
/// use durable_core::FactsRecord;
///
/// #[durable(key = order_id)]
/// async fn order(order_id: String) -> Result<u64, StepError> {
///     let total = step!("price", Ok::<_, StepError>(order_id.len() as u64))?;
///     Ok(total)
/// }
///
/// let record = FactsRecord::from(order.facts());
/// let json = serde_json::to_string(&record).unwrap();
/// let back: FactsRecord = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, record);
/// assert_eq!(back.points[0].name, "price");
/// assert_eq!(back.key_values(r#""o-42""#), [("order_id".to_owned(), "o-42".to_owned())]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactsRecord {
    /// The function's name.
    pub name: String,
    /// The source file of the function.
    pub file: String,
    /// The line of the function's `async fn`.
    pub line: u32,
    /// The names of the function's inputs.
    pub params: Vec<String>,
    /// The inputs marked `#[durable(key = ..)]`.
    pub keys: Vec<String>,
    /// Every suspension point, in source order.
    pub points: Vec<PointRecord>,
    /// Which point can follow which.
    pub edges: Vec<Edge>,
    /// The fingerprint of the persisted layout.
    pub fingerprint: String,
}

/// An owned, serializable copy of a [`PointFacts`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PointRecord {
    /// The point's index in [`FactsRecord::points`].
    pub index: usize,
    /// The name given in the macro call.
    pub name: String,
    /// What the point does.
    pub kind: PointKind,
    /// The source file.
    pub file: String,
    /// The line of the `step!`/`wait!` call.
    pub line: u32,
    /// The column of the `step!`/`wait!` call.
    pub column: u32,
    /// The locals stored in the checkpoint written after this point.
    pub stored: Vec<String>,
}

impl PointRecord {
    /// `file:line`, as editors understand it.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|&name| name.to_owned()).collect()
}

impl From<&PointFacts> for PointRecord {
    fn from(point: &PointFacts) -> Self {
        PointRecord {
            index: point.index,
            name: point.name.to_owned(),
            kind: point.kind,
            file: point.file.to_owned(),
            line: point.line,
            column: point.column,
            stored: owned(point.stored),
        }
    }
}

impl From<&WorkflowFacts> for FactsRecord {
    fn from(facts: &WorkflowFacts) -> Self {
        FactsRecord {
            name: facts.name.to_owned(),
            file: facts.file.to_owned(),
            line: facts.line,
            params: owned(facts.params),
            keys: owned(facts.keys),
            points: facts.points.iter().map(PointRecord::from).collect(),
            edges: facts.edges.to_vec(),
            fingerprint: facts.fingerprint.to_owned(),
        }
    }
}

impl FactsRecord {
    /// The point called `name` (the first, if a name repeats).
    pub fn point(&self, name: &str) -> Option<&PointRecord> {
        self.points.iter().find(|point| point.name == name)
    }

    /// The point a [`Node::Point`] refers to.
    pub fn node_point(&self, node: Node) -> Option<&PointRecord> {
        match node {
            Node::Point(index) => self.points.get(index),
            Node::Start | Node::End => None,
        }
    }

    /// The business keys of an execution, read from its input JSON: `(name, value)` pairs, as
    /// [`WorkflowFacts::key_values`] gives them.
    pub fn key_values(&self, input: &str) -> Vec<(String, String)> {
        key_values(&self.params, &self.keys, input)
    }
}

/// `(key, value)` pairs of the `keys` among `params`, read from `input` (a single value for one
/// parameter, an array for several). Strings are shown without quotes; a missing key is left out.
pub(crate) fn key_values<P: AsRef<str>>(params: &[P], keys: &[P], input: &str) -> Vec<(String, String)> {
    let Ok(input) = serde_json::from_str::<serde_json::Value>(input) else { return Vec::new() };
    keys.iter()
        .filter_map(|key| {
            let index = params.iter().position(|param| param.as_ref() == key.as_ref())?;
            let value = if params.len() == 1 { &input } else { input.get(index)? };
            let text = match value {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            Some((key.as_ref().to_owned(), text))
        })
        .collect()
}

/// Key pairs as one text: `order_id=o-42, region=eu`.
pub(crate) fn keys_text(pairs: &[(String, String)]) -> String {
    pairs.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::key_values;

    #[test]
    fn keys_come_from_one_value_or_an_array() {
        let one = key_values(&["order_id"], &["order_id"], r#""o-1""#);
        assert_eq!(one, [("order_id".to_owned(), "o-1".to_owned())]);
        let many = key_values(&["region", "n"], &["n", "region"], r#"["eu", 7]"#);
        let expected = [("n".to_owned(), "7".to_owned()), ("region".to_owned(), "eu".to_owned())];
        assert_eq!(many, expected);
        assert!(key_values(&["a"], &["a"], "not json").is_empty());
        assert!(key_values(&["a", "b"], &["b"], "[1]").is_empty());
    }
}
