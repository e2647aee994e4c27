//! Which stream an inlet wants: by `name`, `type`, `source_id`, or an XPath `predicate`.
use std::fmt;

/// A stream query, as `lsl_source`'s parameters give it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pub name: Option<String>,
    pub type_: Option<String>,
    pub source_id: Option<String>,
    /// An XPath 1.0 predicate over the stream's info, e.g. `name='eegd' and hostname='pi'`.
    pub predicate: Option<String>,
}

/// The liblsl call a query becomes.
#[derive(Debug, PartialEq)]
pub enum Call<'a> {
    Prop(&'a str, &'a str),
    Pred(String),
}

impl Query {
    /// Why the query cannot be made, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        let props = self.props();
        if self.predicate.is_some() && !props.is_empty() {
            return Err("give either `predicate` or `name`/`type`/`source_id`, not both".into());
        }
        if self.predicate.is_none() && props.is_empty() {
            return Err("say which stream: `name`, `type`, `source_id` or `predicate`".into());
        }
        if let Some((k, _)) = props.iter().find(|(_, v)| v.contains('\'')) {
            return Err(format!("`{k}` cannot contain a single quote (use `predicate`)"));
        }
        Ok(())
    }

    fn props(&self) -> Vec<(&'static str, &str)> {
        [("name", &self.name), ("type", &self.type_), ("source_id", &self.source_id)]
            .into_iter()
            .filter_map(|(k, v)| v.as_deref().map(|v| (k, v)))
            .collect()
    }

    /// One property resolves by property; several by a predicate joining them with `and`.
    pub fn as_call(&self) -> Call<'_> {
        if let Some(p) = &self.predicate {
            return Call::Pred(p.clone());
        }
        let props = self.props();
        match props.as_slice() {
            [(k, v)] => Call::Prop(k, v),
            _ => {
                Call::Pred(props.iter().map(|(k, v)| format!("{k}='{v}'")).collect::<Vec<_>>().join(" and "))
            }
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.as_call() {
            Call::Prop(k, v) => write!(f, "{k}='{v}'"),
            Call::Pred(p) => write!(f, "{p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_property_resolves_by_property_several_by_predicate() {
        let q = Query { type_: Some("Markers".into()), ..Default::default() };
        assert_eq!(q.as_call(), Call::Prop("type", "Markers"));
        let q = Query { name: Some("eegd".into()), type_: Some("EEG".into()), ..Default::default() };
        assert_eq!(q.as_call(), Call::Pred("name='eegd' and type='EEG'".into()));
        assert_eq!(q.to_string(), "name='eegd' and type='EEG'");
    }

    #[test]
    fn refuses_empty_mixed_and_quoted_queries() {
        assert!(Query::default().check().is_err());
        let mixed =
            Query { name: Some("a".into()), predicate: Some("type='EEG'".into()), ..Default::default() };
        assert!(mixed.check().unwrap_err().contains("not both"));
        let quoted = Query { name: Some("it's".into()), ..Default::default() };
        assert!(quoted.check().unwrap_err().contains("single quote"));
    }
}
