//! Property tests against what a client controls: random pipeline files through the whole
//! graph builder (every stage type), and random request bodies against a real `eegd serve`.
//! Nothing panics, and no request gets a 5xx or takes the daemon down.
mod daemon_common;

use daemon_common::Daemon;
use pipeline::topology::graph::plan;
use proptest::prelude::*;

/// A random parameter value: numbers at and past every edge, strings, lists, maps.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1".to_string()),
        Just("4000000000".to_string()),
        Just("1e308".to_string()),
        Just(".nan".to_string()),
        Just("-.inf".to_string()),
        (0u32..100_000).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        Just("~".to_string()),
        Just("true".to_string()),
        Just("block".to_string()),
        Just("drop_oldest".to_string()),
        Just("average".to_string()),
        Just("x.csv".to_string()),
        Just("/dev/zero".to_string()),
        "[a-z]{1,6}",
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec(("[a-z_]{1,8}", inner), 0..3).prop_map(|v| {
                let body: Vec<String> = v.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
                format!("{{{}}}", body.join(", "))
            }),
        ]
    })
}

/// Parameter names the stages use, so random files reach past "unknown parameter".
const KEYS: &[&str] = &[
    "channels",
    "rate",
    "batch",
    "hz",
    "low_hz",
    "high_hz",
    "order",
    "q",
    "factor",
    "path",
    "topic",
    "max_rate_hz",
    "window",
    "bands",
    "channels_to_keep",
    "reference",
    "inputs",
    "name",
    "group",
    "on_error",
    "queue",
    "flush_ms",
    "units",
    "realtime",
    "amplitude_uv",
    "signal",
    "loop",
    "capacity",
];

fn stage() -> impl Strategy<Value = String> {
    let types: Vec<&'static str> = stages::BUILT_IN.to_vec();
    (
        proptest::sample::select(types),
        proptest::collection::vec((proptest::sample::select(KEYS), value()), 0..4),
    )
        .prop_map(|(ty, params)| {
            let body: Vec<String> = params.into_iter().map(|(k, v)| format!("{k}: {v}")).collect();
            format!("  - {ty}: {{ {} }}\n", body.join(", "))
        })
}

fn pipeline_file() -> impl Strategy<Value = String> {
    (proptest::collection::vec(stage(), 1..8), proptest::option::of(value()), proptest::option::of(value()))
        .prop_map(|(stages, runtime, recording)| {
            let mut src = format!("stages:\n{}", stages.concat());
            if let Some(r) = runtime {
                src.push_str(&format!("runtime: {r}\n"));
            }
            if let Some(r) = recording {
                src.push_str(&format!("recording: {r}\n"));
            }
            src
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_pipeline_files_plan_or_are_refused_with_positions(src in pipeline_file()) {
        // An `lsl_source` without `channels` and `rate` resolves its stream when built, waiting up
        // to `timeout_s`; without liblsl it is refused at once, which is all this test needs.
        std::env::set_var("EEGD_LIBLSL", "/nonexistent/liblsl.so");
        // Building opens nothing for writing (sinks open at start), so relative paths are safe.
        match plan("p.yaml", &src) {
            Ok(_) => {}
            Err(d) => prop_assert!(!d.items.is_empty()),
        }
    }
}

/// A request a client might send: an endpoint and a body, JSON-shaped or not.
fn request() -> impl Strategy<Value = (&'static str, &'static str, String)> {
    let json = prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        "\"[ -~]{0,16}\"".prop_map(|s| s.replace('\\', "")),
        Just("{}".to_string()),
        Just("[]".to_string()),
        (proptest::option::of("[ -~]{0,20}"), proptest::option::of(any::<i64>())).prop_map(|(l, t)| {
            let mut m = serde_json::Map::new();
            if let Some(l) = l {
                m.insert("label".into(), l.into());
            }
            if let Some(t) = t {
                m.insert("timestamp_ns".into(), t.into());
            }
            serde_json::Value::Object(m).to_string()
        }),
        (
            proptest::option::of("[ -~]{0,20}"),
            proptest::option::of(prop_oneof![Just("bdf"), Just("edf"), Just("csv"), Just("xls")])
        )
            .prop_map(|(p, f)| serde_json::json!({ "participant": p, "format": f }).to_string()),
        (proptest::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{{\"{k}\": \"{v}\"}}")),
        (proptest::sample::select(KEYS), any::<f64>()).prop_map(|(k, v)| format!("{{\"{k}\": {v}}}")),
        "(?s).{0,64}",
    ];
    let endpoint = prop_oneof![
        Just(("POST", "/api/markers")),
        Just(("POST", "/api/recording/start")),
        Just(("POST", "/api/recording/stop")),
        Just(("POST", "/api/pipeline/restart")),
        Just(("PATCH", "/api/stages/notch/params")),
        Just(("PATCH", "/api/stages/bandpass/params")),
        Just(("PATCH", "/api/stages/emulator/params")),
        Just(("PATCH", "/api/stages/nope/params")),
        Just(("POST", "/api/pipeline/start")),
        Just(("PUT", "/api/pipeline")),
    ];
    (endpoint, prop_oneof![json, pipeline_file()]).prop_map(|((m, p), body)| (m, p, body))
}

#[test]
fn random_request_bodies_never_get_a_server_error() {
    // No liblsl for the daemon either: a random `lsl_source` is refused at once, not resolved.
    std::env::set_var("EEGD_LIBLSL", "/nonexistent/liblsl.so");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let d = Daemon::start();
    let client = d.client();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 200,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&request(), |(method, path, body)| {
            let status = rt.block_on(async {
                let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
                let r = client.request(m, d.url(path)).body(body.clone()).send().await.unwrap();
                let status = r.status().as_u16();
                let ct = r.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_string());
                (status, ct)
            });
            prop_assert!(status.0 < 500, "{method} {path} {body:?} → {}", status.0);
            prop_assert_eq!(status.1.as_deref(), Some("application/json"), "{} {} {:?}", method, path, body);
            Ok(())
        })
        .unwrap();
    let (code, _) = rt.block_on(d.get("/api/health"));
    assert_eq!(code, 200);
}
