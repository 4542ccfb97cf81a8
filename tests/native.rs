//! Native operators (`plugin = "native:NAME"`, the bench-only build): the same alerts as the plugins, resumable checkpoints, `--report`, and clear errors where a build has none.

use sda_testkit::pipeline::quoted;
use sda_testkit::{PipelineToml, Scratch, plugins};
use std::path::Path;
use std::process::{Command, Output};

/// The sample pipeline's shape on the bundled sample data, with the given plugins.
fn write_pipeline(s: &Scratch, correlator: &str, classifier: &str, interval_ms: u64) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/observations.jsonl");
    let toml = PipelineToml::sample("native")
        .observations_file("observations", data.display().to_string())
        .set("operators.correlator", "plugin", quoted(correlator))
        .lines("operators.correlator.config", "window_ms = 60000\nallowed_lateness_ms = 10000\nscreening_km = 5.0")
        .set("operators.classifier", "plugin", quoted(classifier))
        .lines("operators.classifier.config", "red_km = 1.0\nyellow_km = 5.0\nsuppress_ms = 600000")
        .set("checkpoint", "dir", quoted("out/checkpoints"))
        .set("checkpoint", "interval_ms", interval_ms);
    s.write("pipeline.toml", toml.to_string());
}

fn sda(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sda-pipeline"))
        .current_dir(dir)
        .args(args)
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .output()
        .expect("running sda-pipeline")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[cfg(feature = "native-operators")]
mod with_native_operators {
    use super::*;
    use sda_host::report::RunReport;

    #[test]
    fn native_operators_write_the_plugins_alerts_byte_for_byte() {
        let (wasm, native) = (Scratch::new(), Scratch::new());
        write_pipeline(&wasm, plugins::CORRELATOR, plugins::CLASSIFIER, 30_000);
        write_pipeline(&native, "native:correlator", "native:classifier", 30_000);
        for s in [&wasm, &native] {
            let out = sda(s.path(), &["run", "pipeline.toml", "--quiet", "--report", "report.json"]);
            assert!(out.status.success(), "{}", text(&out));
        }
        let alerts = |s: &Scratch| std::fs::read(s.join("out/alerts.jsonl")).unwrap();
        assert!(!alerts(&wasm).is_empty());
        assert_eq!(alerts(&native), alerts(&wasm), "the native build wrote other alerts than the plugins");
        // The same dead letters, but for when they were written and which code wrote them.
        let dead_letters = |s: &Scratch| -> Vec<serde_json::Value> {
            let mut entries = s.read_jsonl("out/dlq.jsonl");
            for entry in &mut entries {
                let fields = entry.as_object_mut().unwrap();
                fields.remove("failed_at");
                fields.remove("plugin_digest");
            }
            entries
        };
        let (native_dlq, wasm_dlq) = (dead_letters(&native), dead_letters(&wasm));
        assert!(!wasm_dlq.is_empty());
        assert!(native_dlq == wasm_dlq, "the native build dead-lettered other records than the plugins");

        // The report agrees with the run, and the final checkpoint's pause is in it.
        let report: RunReport = serde_json::from_slice(&std::fs::read(native.join("report.json")).unwrap()).unwrap();
        let observations = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/observations.jsonl")).unwrap();
        assert!(report.records_in > 0 && report.records_in as usize <= observations.lines().count());
        assert_eq!(report.records_out as usize, String::from_utf8(alerts(&native)).unwrap().lines().count());
        assert!(report.checkpoint_pause.is_some_and(|p| p.count >= 1), "{report:?}");
        assert!(report.peak_rss_bytes.is_some_and(|b| b > 1 << 20));
        assert!(report.timeline.len() >= 2 && report.timeline.last().unwrap().records_in == report.records_in);
    }

    #[test]
    fn a_native_run_resumes_from_its_checkpoint_and_plan_names_it() {
        let s = Scratch::new();
        write_pipeline(&s, "native:correlator", "native:classifier", 0);
        let plan = sda(s.path(), &["plan", "pipeline.toml"]);
        assert!(plan.status.success(), "{}", text(&plan));
        assert!(text(&plan).contains("native:correlator"), "{}", text(&plan));
        let first = sda(s.path(), &["run", "pipeline.toml", "--quiet"]);
        assert!(first.status.success(), "{}", text(&first));
        let alerts = std::fs::read(s.join("out/alerts.jsonl")).unwrap();
        // A second run resumes from the end-of-input checkpoint: the native operators' state is
        // restored, and nothing is delivered twice.
        let second = sda(s.path(), &["run", "pipeline.toml", "--quiet"]);
        assert!(second.status.success(), "{}", text(&second));
        assert!(text(&second).contains("resumed from checkpoint"), "{}", text(&second));
        assert_eq!(std::fs::read(s.join("out/alerts.jsonl")).unwrap(), alerts);
    }

    #[test]
    fn an_unknown_native_operator_is_named_with_the_ones_there_are() {
        let s = Scratch::new();
        write_pipeline(&s, "native:correlatr", plugins::CLASSIFIER, 30_000);
        let out = sda(s.path(), &["validate", "pipeline.toml"]);
        assert!(!out.status.success());
        let said = text(&out);
        assert!(said.contains("no native operator `correlatr`") && said.contains("correlator, classifier"), "{said}");
    }

    #[test]
    fn a_native_operator_that_rejects_its_config_stops_the_start() {
        let s = Scratch::new();
        write_pipeline(&s, "native:correlator", "native:classifier", 30_000);
        let toml = std::fs::read_to_string(s.join("pipeline.toml")).unwrap().replace("screening_km = 5.0", "screening_km = -1.0");
        s.write("pipeline.toml", toml);
        let out = sda(s.path(), &["run", "pipeline.toml", "--quiet"]);
        assert!(!out.status.success());
        let said = text(&out);
        assert!(said.contains("correlator") && said.contains("screening_km"), "{said}");
    }
}

#[cfg(not(feature = "native-operators"))]
#[test]
fn a_build_without_native_operators_says_how_to_get_them() {
    let s = Scratch::new();
    write_pipeline(&s, "native:correlator", plugins::CLASSIFIER, 30_000);
    let out = sda(s.path(), &["validate", "pipeline.toml"]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("--features native-operators") && said.contains("operator `correlator`"), "{said}");
}
