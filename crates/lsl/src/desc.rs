//! A stream description (`<desc>` of an LSL stream info) as a plain tree, so the metadata eegd
//! publishes is built and tested without liblsl, then written in one go.

/// One XML element: a value (a leaf) or children.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DescNode {
    pub name: String,
    pub value: Option<String>,
    pub children: Vec<DescNode>,
}

impl DescNode {
    pub fn new(name: &str) -> DescNode {
        DescNode { name: name.into(), value: None, children: Vec::new() }
    }

    pub fn leaf(name: &str, value: impl Into<String>) -> DescNode {
        DescNode { name: name.into(), value: Some(value.into()), children: Vec::new() }
    }

    pub fn with(mut self, child: DescNode) -> DescNode {
        self.children.push(child);
        self
    }

    /// The first child called `name`.
    pub fn child(&self, name: &str) -> Option<&DescNode> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The value of the first child called `name`.
    pub fn value_of(&self, name: &str) -> Option<&str> {
        self.child(name).and_then(|c| c.value.as_deref())
    }
}
