//! `POST /api/pipeline/stages`: live edits of the running pipeline (add, remove, replace a
//! stage), and the diff that turns a new pipeline file into such edits (`POST
//! /api/pipeline/start`, SIGHUP).
//!
//! The body is read with the pipeline file's own parser, so an invalid stage is reported at
//! its line and column in the request, with the same messages as in a file.
use super::control::Controller;
use super::error::ApiError;
use super::{launching, AppState, Launcher};
use axum::extract::State;
use axum::Json;
use bytes::Bytes;
use pipeline::edit::{parse_stage, EditError};
use pipeline::topology::file::StageDecl;
use pipeline::topology::yaml::{self, Node, Value as YamlValue};
use pipeline::topology::{Diagnostic, Diagnostics};
use serde_json::Value;
use std::path::{Component, Path};

/// What a request asks for.
pub(super) enum StageEdit {
    Add(StageDecl),
    Remove { name: String, cascade: bool },
    Replace { name: String, with: StageDecl },
}

/// The name requests are reported under in diagnostics.
const REQUEST: &str = "request";

fn invalid(items: Vec<Diagnostic>) -> ApiError {
    ApiError::InvalidPipeline(Diagnostics::new(REQUEST, items))
}

/// Reads `{"add": {TYPE: {...}}}`, `{"remove": NAME, "cascade": BOOL}` or
/// `{"replace": NAME, "with": {TYPE: {...}}}`.
pub(super) fn parse_request(body: &str, data_dir: &Path) -> Result<StageEdit, ApiError> {
    let root = yaml::parse(body).map_err(|d| invalid(vec![d]))?;
    let Some(entries) = root.as_map() else {
        return Err(invalid(vec![Diagnostic::at(
            root.span,
            "an edit is a JSON object: `add`, `remove` (and `cascade`) or `replace` and `with`",
        )]));
    };
    let known = ["add", "remove", "cascade", "replace", "with"];
    let mut diags: Vec<Diagnostic> = entries
        .iter()
        .filter_map(|(k, _)| {
            let key = k.as_str().unwrap_or_default();
            (!known.contains(&key)).then(|| {
                Diagnostic::at(
                    k.span,
                    format!(
                        "unknown key `{key}`{}",
                        pipeline::topology::diag::did_you_mean(key, known.iter().copied())
                    ),
                )
            })
        })
        .collect();
    let name_of = |node: &Node, what: &str, diags: &mut Vec<Diagnostic>| match node.as_str() {
        Some(n) => Some(n.to_string()),
        None => {
            diags.push(Diagnostic::at(
                node.span,
                format!("`{what}` is a stage name, found {}", node.type_name()),
            ));
            None
        }
    };
    let stage = |node: &Node, diags: &mut Vec<Diagnostic>| match parse_stage(node) {
        Ok(d) => confine(d, data_dir).map_err(|d| diags.push(d)).ok(),
        Err(mut d) => {
            diags.append(&mut d);
            None
        }
    };
    let edit = match (root.get("add"), root.get("remove"), root.get("replace")) {
        (Some(add), None, None) => stage(add, &mut diags).map(StageEdit::Add),
        (None, Some(remove), None) => {
            let cascade = match root.get("cascade") {
                None => false,
                Some(c) => match &c.value {
                    YamlValue::Bool(b) => *b,
                    _ => {
                        diags.push(Diagnostic::at(
                            c.span,
                            format!("`cascade` is true or false, found {}", c.type_name()),
                        ));
                        false
                    }
                },
            };
            name_of(remove, "remove", &mut diags).map(|name| StageEdit::Remove { name, cascade })
        }
        (None, None, Some(replace)) => {
            let name = name_of(replace, "replace", &mut diags);
            match root.get("with") {
                Some(with) => stage(with, &mut diags)
                    .and_then(|with| name.map(|name| StageEdit::Replace { name, with })),
                None => {
                    diags.push(Diagnostic::at(
                        replace.span,
                        "`replace` needs `with`, the stage to put in its place",
                    ));
                    None
                }
            }
        }
        _ => {
            diags.push(Diagnostic::at(root.span, "give exactly one of `add`, `remove` or `replace`"));
            None
        }
    };
    match edit {
        Some(e) if diags.is_empty() => Ok(e),
        _ => Err(invalid(diags)),
    }
}

/// Takes a stage's `path` inside the data directory, as for a pipeline file.
fn confine(mut d: StageDecl, root: &Path) -> Result<StageDecl, Diagnostic> {
    let Some(p) = d.params.get("path") else { return Ok(d) };
    let Some(text) = p.as_str() else { return Ok(d) };
    let path = Path::new(text);
    if text.is_empty() || !path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
        return Err(Diagnostic::at(
            p.span,
            format!(
                "`path` \"{text}\": files the daemon reads or writes lie inside its data directory; \
                 give a path relative to it, without `..`"
            ),
        ));
    }
    let joined = root.join(path).display().to_string();
    if let YamlValue::Map(entries) = &mut d.params.value {
        for (k, v) in entries.iter_mut() {
            if k.as_str() == Some("path") {
                *v = Node::new(v.span, YamlValue::Str(joined.clone()));
            }
        }
    }
    Ok(d)
}

/// What the API answers for an edit that was not applied.
pub(super) fn edit_error(e: EditError) -> ApiError {
    match e {
        EditError::Invalid(d) => invalid(d),
        EditError::UnknownStage(_) => ApiError::NotFound(e.to_string()),
        EditError::Start { .. } => ApiError::BadRequest(e.to_string()),
        EditError::Locked { .. }
        | EditError::HasDependants { .. }
        | EditError::Source(_)
        | EditError::NoRoom(_)
        | EditError::NotRunning(_) => ApiError::Conflict(e.to_string()),
    }
}

/// `POST /api/pipeline/stages`. On the launcher thread: an added sink may start a thread.
pub(super) async fn edit_stages(State(st): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::BadRequest("the body is not UTF-8 text".into()))?
        .to_string();
    launching(&st, move |c| {
        let edit = parse_request(&text, c.sessions.root())?;
        c.edit(edit)
    })
    .await
    .map(Json)
}

/// Re-reads the `--config` file on every SIGHUP and applies it as `POST /api/pipeline/start`
/// would: live when its sources are unchanged, else by a restart. A file that does not
/// validate is logged with its positions, and the running pipeline goes on.
pub(super) async fn reload_on_sighup(
    ctl: std::sync::Arc<Controller>,
    launcher: Launcher,
    path: std::path::PathBuf,
) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("Cannot listen for SIGHUP; the config file is not reloaded");
        return;
    };
    while hup.recv().await.is_some() {
        let name = path.display().to_string();
        let source = match tokio::fs::read_to_string(&path).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(file = %name, error = %e, "SIGHUP: cannot read the config file; the pipeline goes on");
                continue;
            }
        };
        let (file, c) = (name.clone(), ctl.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Box::new(move || {
            let _ = tx.send(c.start(&file, &source));
        });
        if launcher.0.send(job).is_err() {
            return;
        }
        let Ok(result) = rx.await else { continue };
        match result {
            Ok(v) => tracing::info!(file = %name, applied = %v["applied"], "SIGHUP: config file applied"),
            Err(ApiError::InvalidPipeline(d)) => {
                tracing::error!(file = %name, "SIGHUP: the config file is invalid; the pipeline goes on:\n{d}")
            }
            Err(e) => tracing::error!(file = %name, error = %e, "SIGHUP: the config file was not applied"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(body: &str) -> String {
        match parse_request(body, Path::new("/data")) {
            Err(ApiError::InvalidPipeline(d)) => d.to_string(),
            Err(e) => panic!("expected a diagnostic, got {e}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    #[test]
    fn reads_the_three_edits() {
        let root = Path::new("/data");
        assert!(matches!(
            parse_request(r#"{"add": {"fft": {"size": 256, "inputs": ["bandpass"]}}}"#, root),
            Ok(StageEdit::Add(d)) if d.type_name == "fft" && d.name == "fft"
        ));
        assert!(matches!(
            parse_request(r#"{"remove": "fft", "cascade": true}"#, root),
            Ok(StageEdit::Remove { name, cascade: true }) if name == "fft"
        ));
        assert!(matches!(
            parse_request(r#"{"replace": "bandpass", "with": {"highpass": {"hz": 1}}}"#, root),
            Ok(StageEdit::Replace { name, with }) if name == "bandpass" && with.type_name == "highpass"
        ));
    }

    #[test]
    fn reports_mistakes_at_their_place_in_the_request() {
        assert_eq!(
            errors("{\"remove\": \"fft\",\n \"cascdae\": true}"),
            "request:2:2: error: unknown key `cascdae`; did you mean `cascade`?"
        );
        assert!(errors(r#"{"replace": "bandpass"}"#).contains("`replace` needs `with`"));
        assert!(errors(r#"{"add": {"fft": {}, "notch": {}}}"#).starts_with("request:1:"));
        assert!(errors(r#"{"add": {"csv_sink": {"path": "../x.csv", "inputs": ["a"]}}}"#)
            .contains("inside its data directory"));
        assert!(errors(r#"[1]"#).contains("an edit is a JSON object"));
    }

    #[test]
    fn takes_paths_inside_the_data_directory() {
        let Ok(StageEdit::Add(d)) =
            parse_request(r#"{"add": {"csv_sink": {"path": "x.csv", "inputs": ["a"]}}}"#, Path::new("/data"))
        else {
            panic!("expected an add")
        };
        assert_eq!(d.params.get("path").and_then(|p| p.as_str()), Some("/data/x.csv"));
    }
}
