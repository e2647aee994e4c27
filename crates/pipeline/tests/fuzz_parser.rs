//! The pipeline-file parser against random input: any text, and YAML built from random trees
//! with anchors, aliases, tags, deep nesting and repeated keys. It returns a tree or
//! positioned diagnostics, never panics, and stays within its limits. (The whole graph builder,
//! with every stage type, is fuzzed in `crates/eegd/tests/fuzz_api.rs`.)
use pipeline::topology::file::parse_file;
use pipeline::topology::yaml;
use proptest::prelude::*;

/// A random YAML document as text: maps, lists, flow and block style, scalars of every kind,
/// anchors and aliases to them.
fn yaml_text() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("~".to_string()),
        Just("true".to_string()),
        any::<i64>().prop_map(|i| i.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        Just(".inf".to_string()),
        Just(".nan".to_string()),
        "[a-z_]{1,8}",
        "\"[ -~]{0,12}\"".prop_map(|s| s.replace('\\', "")),
        Just("!!str 5".to_string()),
        Just("!!int x".to_string()),
        Just("!custom 3".to_string()),
        Just("*a".to_string()),
        Just("&a 1".to_string()),
    ];
    let key = prop_oneof![
        Just("stages".to_string()),
        Just("runtime".to_string()),
        Just("recording".to_string()),
        Just("name".to_string()),
        Just("inputs".to_string()),
        Just("group".to_string()),
        Just("pool_packets".to_string()),
        Just("? *a".to_string()),
        "[a-z_]{1,6}",
    ];
    scalar.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(|v| format!("[{}]", v.join(", "))),
            proptest::collection::vec((key.clone(), inner.clone()), 0..6).prop_map(|v| {
                let body: Vec<String> = v.into_iter().map(|(k, v)| format!("{k} : {v}")).collect();
                format!("{{{}}}", body.join(", "))
            }),
            inner.prop_map(|v| format!("&a {v}")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_text_parses_or_is_refused_with_positions(src in "(?s).{0,400}") {
        let (_, diags) = parse_file(&src);
        for d in &diags {
            prop_assert!(!d.message.is_empty());
        }
    }

    #[test]
    fn random_yaml_trees_parse_or_are_refused(doc in yaml_text(), wrap in 0usize..3) {
        let src = match wrap {
            0 => doc,
            1 => format!("stages: {doc}\n"),
            _ => format!("stages:\n  - emulator: {doc}\nruntime: {doc}\n"),
        };
        if let Ok(node) = yaml::parse(&src) {
            // The tree converts and walks without trouble.
            let _ = node.to_json();
            let _ = yaml::duplicate_keys(&node);
        }
        let _ = parse_file(&src);
    }

    #[test]
    fn deep_or_wide_nesting_is_refused_not_overflowed(depth in 1usize..3000, open in prop_oneof![Just("["), Just("{a: "), Just("- ")]) {
        let src = match open {
            "- " => (0..depth).map(|k| format!("{}- \n", " ".repeat(2 * k))).collect::<String>(),
            o => format!("{}1{}", o.repeat(depth), if o == "[" { "]" } else { "}" }.repeat(depth)),
        };
        let _ = parse_file(&src);
    }
}
