//! Hot swap for real: a running `sda-pipeline run --follow`, plugins swapped through `sda-pipeline swap` while input streams in, failed swaps, and a SIGKILL right after a swap.
//!
//! Each test feeds a generated scenario into a followed file in chunks, acts
//! between (or during) chunks, stops the process, and finishes the input with a
//! plain `run` (which closes the last windows). The alerts must equal those of
//! one uninterrupted, unswapped run, byte for byte.

use sda_host::checkpoint::format::Checkpoint;
use sda_scenario::GenerateOptions;
use sda_testkit::pipeline::quoted;
use sda_testkit::{PipelineToml, Scratch, plugins};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const OBJECTS: usize = 150;
const MINUTES: u32 = 40;
const SEED: u64 = 11;

fn pipeline_toml(admin: Option<&str>, classifier: &str) -> String {
    pipeline_toml_with(admin, classifier, "")
}

/// The pipeline the swap tests run, with `correlator_settings` added to the correlator's table.
fn pipeline_toml_with(admin: Option<&str>, classifier: &str, correlator_settings: &str) -> String {
    swaps(admin, classifier).lines("operators.correlator", correlator_settings).to_string()
}

/// The sample graph as the swap tests run it: `classifier` the classifier's plugin, an admin endpoint listening at
/// `admin` if given.
fn swaps(admin: Option<&str>, classifier: &str) -> PipelineToml {
    let toml = PipelineToml::sample("swaps")
        .set("runtime", "batch_size", 128)
        .set("checkpoint", "dir", quoted("state/local"))
        .set("checkpoint", "interval_ms", 200)
        .set("operators.classifier", "plugin", quoted(classifier))
        .set("operators.classifier", "config", "{ red_km = 1.0 }");
    match admin {
        Some(address) => toml.set("admin", "listen", quoted(address)),
        None => toml,
    }
}

fn sda(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sda-pipeline"));
    cmd.current_dir(dir)
        .env("SDA_CACHE_DIR", Path::new(env!("CARGO_TARGET_TMPDIR")).join("component-cache"))
        .env("SDA_LOG", "warn")
        .env_remove("SDA_FAILPOINT");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The scenario's lines, and the alerts of one uninterrupted run over all of them.
fn scenario_and_golden() -> (Vec<String>, Vec<u8>) {
    let golden = Scratch::new();
    let options = GenerateOptions { objects: OBJECTS, minutes: MINUTES, seed: SEED, ..GenerateOptions::default() };
    sda_scenario::write_scenario(&golden.join("obs.jsonl"), &options, &|_, _| {}).expect("generating");
    golden.write("pipeline.toml", pipeline_toml(None, plugins::CLASSIFIER));
    let out = sda(golden.path()).args(["run", "--quiet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = std::fs::read_to_string(golden.join("obs.jsonl")).unwrap().lines().map(|l| format!("{l}\n")).collect();
    (lines, std::fs::read(golden.join("out/alerts.jsonl")).unwrap())
}

/// A pipeline following `obs.jsonl`, fed by the test, with an admin endpoint.
struct Live {
    scratch: Scratch,
    address: String,
    child: Option<Child>,
    fed: usize,
}

impl Live {
    fn new(classifier: &str) -> Live {
        Live::with_correlator(classifier, "")
    }

    /// A live pipeline whose correlator's table also holds `correlator_settings`.
    fn with_correlator(classifier: &str, correlator_settings: &str) -> Live {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let address = format!("127.0.0.1:{port}");
        let scratch = Scratch::new();
        scratch.write("obs.jsonl", "");
        scratch.write("pipeline.toml", pipeline_toml_with(Some(&address), classifier, correlator_settings));
        Live { scratch, address, child: None, fed: 0 }
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.scratch.join(&format!("run-{}.log", self.fed))).unwrap();
        let child = sda(self.scratch.path()).args(["run", "--follow", "--quiet"]).stdout(Stdio::null()).stderr(log).spawn().unwrap();
        self.child = Some(child);
        wait_for("the admin endpoint", || self.status().is_some());
    }

    fn status(&self) -> Option<Value> {
        let out = sda(self.scratch.path()).args(["status", "--json", "--admin", &self.address]).output().ok()?;
        out.status.success().then(|| serde_json::from_slice(&out.stdout).ok()).flatten()
    }

    /// Appends `lines` and waits until the pipeline has read them all.
    fn feed(&mut self, lines: &[String]) {
        let mut file = std::fs::OpenOptions::new().append(true).open(self.scratch.join("obs.jsonl")).unwrap();
        for line in lines {
            file.write_all(line.as_bytes()).unwrap();
        }
        drop(file);
        self.fed += lines.len();
        let size = std::fs::metadata(self.scratch.join("obs.jsonl")).unwrap().len();
        wait_for("the pipeline to read what was fed", || {
            self.status().is_some_and(|s| s["tasks"]["observations-0"]["source_offset"].as_u64() == Some(size))
        });
    }

    fn swap(&self, operator: &str, plugin: &str) -> Output {
        sda(self.scratch.path()).args(["swap", "--operator", operator, "--plugin", plugin]).output().unwrap()
    }

    fn swap_ok(&self, operator: &str, plugin: &str) -> String {
        let out = self.swap(operator, plugin);
        assert_eq!(out.status.code(), Some(0), "swap of {operator} failed: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    fn operator(&self, name: &str) -> Value {
        self.status().expect("a status")["operators"][name].clone()
    }

    /// SIGTERM: the batch in hand is finished and checkpointed.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("running");
        let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(killed.success());
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{}", self.log());
    }

    fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }

    fn log(&self) -> String {
        std::fs::read_dir(self.scratch.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("run-"))
            .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
            .collect()
    }

    /// Appends what is left and runs to the end of the input without following, which closes the last windows.
    fn finish(&mut self, rest: &[String]) -> String {
        let mut file = std::fs::OpenOptions::new().append(true).open(self.scratch.join("obs.jsonl")).unwrap();
        for line in rest {
            file.write_all(line.as_bytes()).unwrap();
        }
        let out = sda(self.scratch.path()).args(["run", "--quiet"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stderr)
    }

    fn assert_alerts_equal(&self, golden: &[u8]) {
        let alerts = std::fs::read(self.scratch.join("out/alerts.jsonl")).unwrap();
        let ids: Vec<String> =
            self.scratch.read_jsonl("out/alerts.jsonl").iter().map(|a| a["alert_id"].as_str().unwrap().to_string()).collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "duplicate alert ids");
        assert!(!ids.is_empty(), "the scenario gives alerts");
        assert!(alerts == golden, "the alerts differ from an unswapped run's:\n{}", text(&alerts));
    }

    /// The newest local checkpoint of the task.
    /// The newest local checkpoint of the task, once there is one (the first is taken an
    /// `interval_ms` after the start, which may be after the first records are read).
    fn newest_checkpoint(&self) -> Checkpoint {
        let dir = self.scratch.join("state/local/swaps/observations-0");
        let files = || -> Vec<std::path::PathBuf> {
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .filter_map(|e| e.ok())
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == sda_host::checkpoint::format::EXTENSION))
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            files
        };
        wait_for("a checkpoint", || !files().is_empty());
        Checkpoint::decode(&std::fs::read(files().last().expect("a checkpoint")).unwrap()).unwrap()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn digest_of(path: &str) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap())))
}

/// The component at `plugin` with a custom section appended: a rebuild that behaves identically
/// under another digest. Written beside it (the admin endpoint loads plugins only from the folders
/// of those the pipeline file names), and removed when dropped.
fn rebuilt(scratch: &Scratch, plugin: &str) -> Rebuilt {
    let mut bytes = std::fs::read(plugin).unwrap();
    let (name, payload) = (b"sda-test-rebuild".as_slice(), b"identical".as_slice());
    bytes.push(0); // custom section
    bytes.push((1 + name.len() + payload.len()) as u8); // its size, LEB128 (< 128)
    bytes.push(name.len() as u8);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    let unique = scratch.path().file_name().unwrap().to_string_lossy().into_owned();
    let path = Path::new(plugin).with_file_name(format!("rebuilt-{unique}.wasm"));
    std::fs::write(&path, bytes).unwrap();
    Rebuilt(path.display().to_string())
}

/// The path of a rebuilt plugin, which goes with it.
struct Rebuilt(String);

impl std::ops::Deref for Rebuilt {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for Rebuilt {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn chunks(lines: &[String], n: usize) -> Vec<&[String]> {
    lines.chunks(lines.len().div_ceil(n)).collect()
}

#[test]
fn swapping_a_correlator_of_two_instances_replaces_both_and_changes_no_alert() {
    let (lines, golden) = scenario_and_golden();
    let mut live = Live::with_correlator(plugins::CLASSIFIER, "parallelism = 2");
    live.start();
    let parts = chunks(&lines, 3);
    live.feed(parts[0]);
    // A plugin that cannot run as two instances (WIT 0.1.0: no shard) is refused, and the old keeps running.
    let refused = live.swap("correlator", plugins::WIT_V0_1);
    assert_ne!(refused.status.code(), Some(0), "{}", text(&refused.stdout));
    let said = text(&refused.stderr) + &text(&refused.stdout);
    assert!(said.contains("0.1.0") && said.contains("parallelism"), "the refusal names the WIT version and the setting: {said}");
    assert_eq!(live.operator("correlator")["digest"], digest_of(plugins::CORRELATOR));
    // A rebuild of the correlator replaces both instances, their state carried over.
    let correlator = rebuilt(&live.scratch, plugins::CORRELATOR);
    let report = live.swap_ok("correlator", &correlator);
    assert!(report.contains("task observations-0: state version 4 -> 4"), "{report}");
    live.feed(parts[1]);
    assert_eq!(live.operator("correlator")["digest"], digest_of(&correlator));
    live.stop();
    live.finish(parts[2]);
    live.assert_alerts_equal(&golden);
}

#[test]
fn swapping_under_load_changes_no_alert() {
    let (lines, golden) = scenario_and_golden();
    let mut live = Live::new(plugins::CLASSIFIER);
    live.start();
    let parts = chunks(&lines, 6);
    // While the input streams in: the correlator for a rebuild (same code, another digest), and the classifier for its
    // version 2 (migrating version 1 state) and then for version 2 again, several times over.
    let correlator = rebuilt(&live.scratch, plugins::CORRELATOR);
    assert_ne!(digest_of(&correlator), digest_of(plugins::CORRELATOR));
    let mut swaps = Vec::new();
    let input = live.scratch.join("obs.jsonl");
    for part in &parts[..5] {
        // Feed and swap at once, so swaps land between the batches of a busy task.
        std::thread::scope(|scope| {
            let feeder = scope.spawn(|| {
                let mut file = std::fs::OpenOptions::new().append(true).open(&input).unwrap();
                for line in *part {
                    file.write_all(line.as_bytes()).unwrap();
                }
            });
            swaps.push(live.swap_ok("correlator", &correlator));
            swaps.push(live.swap_ok("classifier", plugins::CLASSIFIER_V2));
            feeder.join().unwrap();
        });
        live.fed += part.len();
    }
    live.feed(&[]);
    for report in &swaps {
        assert!(report.contains("task observations-0: state version"), "a swap that reached no task: {report}");
    }
    assert!(swaps[1].contains("state version 1 -> 2"), "{}", swaps[1]);
    assert!(swaps[3].contains("state version 2 -> 2"), "{}", swaps[3]);
    let classifier = live.operator("classifier");
    assert_eq!(classifier["digest"], digest_of(plugins::CLASSIFIER_V2));
    assert_eq!(classifier["state_version"], 2);
    assert!(classifier["swapped_by"].as_str().unwrap().starts_with("sda-pipeline swap"), "{classifier}");
    assert_eq!(classifier["swapped_from"], digest_of(plugins::CLASSIFIER_V2), "the last swap was version 2 for version 2");
    assert_eq!(live.operator("correlator")["digest"], digest_of(&correlator));
    let shown = sda(live.scratch.path()).args(["status"]).output().unwrap();
    let shown = text(&shown.stdout);
    let line = shown.lines().find(|l| l.trim_start().starts_with("classifier")).unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains("state v2") && line.contains("swapped ") && line.contains("by sda-pipeline swap"), "{shown}");
    live.stop();
    live.finish(parts[5]);
    live.assert_alerts_equal(&golden);
    // The restart ran version 2, from the journal: pipeline.toml still names version 1.
    let last = live.newest_checkpoint();
    let saved = last.operators.iter().find(|o| o.name == "classifier").unwrap();
    assert_eq!((saved.plugin_digest.as_str(), saved.state_version), (digest_of(plugins::CLASSIFIER_V2).as_str(), 2));
}

#[test]
fn failed_swaps_leave_the_old_plugin_running_and_the_output_unchanged() {
    let (lines, golden) = scenario_and_golden();
    let mut live = Live::new(plugins::CLASSIFIER);
    live.start();
    let parts = chunks(&lines, 3);
    live.feed(parts[0]);
    // Beside the plugins the pipeline names: the admin endpoint loads from nowhere else.
    let unique = live.scratch.path().file_name().unwrap().to_string_lossy().into_owned();
    let corrupt = Path::new(plugins::CLASSIFIER).with_file_name(format!("corrupt-{unique}.wasm"));
    std::fs::write(&corrupt, b"\0asm\x0d\0\x01\0 this is not a component at all").unwrap();
    let cases: [(&str, &str, &str); 4] = [
        (corrupt.to_str().unwrap(), "failed at step `read`", "corrupt-"),
        (plugins::WIT_FUTURE, "failed at step `read`", "0.3.0"),
        // The classifier's config (`red_km`) is not the passthrough's: its `init` rejects it.
        (plugins::PASSTHROUGH, "failed at step `init`", "red_km"),
        (plugins::CLASSIFIER_INCOMPATIBLE, "failed at step `restore` in task `observations-0`", "cannot migrate state version 1"),
    ];
    for (plugin, step, detail) in cases {
        let out = live.swap("classifier", plugin);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{plugin}: {}{stderr}", text(&out.stdout));
        assert!(stderr.contains(step) && stderr.contains(detail), "{plugin}: {stderr}");
        assert!(stderr.contains(&format!("Every task keeps plugin {}", digest_of(plugins::CLASSIFIER))), "{stderr}");
        assert_eq!(live.operator("classifier")["digest"], digest_of(plugins::CLASSIFIER), "after {plugin}");
    }
    let unknown = live.swap("classifer", plugins::CLASSIFIER_V2);
    assert!(
        text(&unknown.stderr).contains("has no operator `classifer`; its operators are `correlator`, `classifier`"),
        "{}",
        text(&unknown.stderr)
    );
    let mut bad_token = sda(live.scratch.path());
    live.scratch.write("wrong.token", "0123\n");
    let refused = bad_token
        .args(["swap", "--operator", "classifier", "--plugin", plugins::CLASSIFIER_V2, "--token-file", "wrong.token"])
        .output()
        .unwrap();
    let said = text(&refused.stderr);
    assert!(said.contains("answered 401: missing or wrong bearer token"), "{said}");
    // The refusal does not tell an unauthenticated caller where the token file is.
    assert!(!said.contains(&live.scratch.join("state/local").display().to_string()) && !said.contains("admin.token"), "{said}");

    // A plugin outside the folders of those pipeline.toml names is refused, however it is reached:
    // directly, through `..`, or through a symlink in a plugin folder.
    let plugin_dir = Path::new(plugins::CLASSIFIER_V2).parent().unwrap();
    let outside = live.scratch.write("elsewhere.wasm", std::fs::read(plugins::CLASSIFIER_V2).unwrap());
    let above = plugin_dir.parent().unwrap().join(format!("escape-{unique}.wasm"));
    std::fs::copy(plugins::CLASSIFIER_V2, &above).unwrap();
    let through_dots = plugin_dir.join("..").join(above.file_name().unwrap());
    let link = plugin_dir.join(format!("link-{unique}.wasm"));
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    for path in [&outside, &through_dots, &link] {
        let refused = live.swap("classifier", path.to_str().unwrap());
        let said = text(&refused.stderr);
        assert_ne!(refused.status.code(), Some(0), "{}: {said}", path.display());
        assert!(
            said.contains("answered 403") && said.contains("is outside the plugin folders of this pipeline"),
            "{}: {said}",
            path.display()
        );
    }
    for file in [&above, &link, &corrupt] {
        std::fs::remove_file(file).unwrap();
    }
    assert_eq!(live.operator("classifier")["digest"], digest_of(plugins::CLASSIFIER), "nothing was swapped");

    live.feed(parts[1]);
    live.stop();
    assert!(!live.scratch.join("state/local/swaps/swaps.json").exists(), "a failed swap recorded nothing");
    live.finish(parts[2]);
    live.assert_alerts_equal(&golden);
}

#[test]
fn a_crash_right_after_a_swap_recovers_with_the_new_plugin_and_its_state() {
    let (lines, golden) = scenario_and_golden();
    let mut live = Live::new(plugins::CLASSIFIER);
    live.start();
    let parts = chunks(&lines, 3);
    live.feed(parts[0]);
    let before = live.newest_checkpoint().header.sequence;
    let report = live.swap_ok("classifier", plugins::CLASSIFIER_V2);
    assert!(report.contains("state version 1 -> 2"), "{report}");
    assert_eq!(live.operator("classifier")["swapped_from"], digest_of(plugins::CLASSIFIER));
    live.kill();
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(live.scratch.join("state/local/swaps/swaps.json")).unwrap()).unwrap();
    assert_eq!(journal["operators"]["classifier"]["digest"], digest_of(plugins::CLASSIFIER_V2));

    // Killed before any checkpoint named version 2: the restart runs version 2 all the same (pipeline.toml
    // still names version 1), which migrates the last checkpoint's version 1 state once more.
    let last = live.newest_checkpoint();
    let saved = last.operators.iter().find(|o| o.name == "classifier").unwrap();
    if last.header.sequence == before {
        assert_eq!(saved.plugin_digest, digest_of(plugins::CLASSIFIER));
    }
    live.start();
    wait_for("the restarted pipeline's operators", || {
        live.status().is_some_and(|s| s["operators"]["classifier"]["digest"] == digest_of(plugins::CLASSIFIER_V2))
    });
    assert!(live.log().contains("running the plugin swapped in before the restart"), "{}", live.log());
    live.feed(parts[1]);
    // The next checkpoint records the swap: killed after it, the restart restores version 2 state into version 2.
    wait_for("a checkpoint naming version 2", || {
        let c = live.newest_checkpoint();
        c.operators.iter().any(|o| o.name == "classifier" && o.plugin_digest == digest_of(plugins::CLASSIFIER_V2) && o.state_version == 2)
    });
    live.kill();
    live.finish(parts[2]);
    live.assert_alerts_equal(&golden);

    // Editing pipeline.toml to name version 2 makes the swap permanent: the journal entry goes.
    let toml = std::fs::read_to_string(live.scratch.join("pipeline.toml")).unwrap();
    live.scratch.write("pipeline.toml", toml.replace(plugins::CLASSIFIER, plugins::CLASSIFIER_V2));
    let out = sda(live.scratch.path()).args(["run", "--quiet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let journal: Value =
        serde_json::from_str(&std::fs::read_to_string(live.scratch.join("state/local/swaps/swaps.json")).unwrap()).unwrap();
    assert!(journal["operators"].as_object().unwrap().is_empty(), "{journal}");
}

impl Live {
    /// Like [`Live::start`], with `--watch`.
    fn start_watching(&mut self) {
        let log = std::fs::File::create(self.scratch.join(&format!("run-{}.log", self.fed))).unwrap();
        let child = sda(self.scratch.path())
            .args(["run", "--follow", "--watch", "--quiet"])
            .env("SDA_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_for("the admin endpoint", || self.status().is_some());
    }

    /// Rewrites pipeline.toml through `edit` (as an editor would: a temp file renamed over it).
    fn edit(&self, edit: impl FnOnce(String) -> String) {
        let toml = std::fs::read_to_string(self.scratch.join("pipeline.toml")).unwrap();
        self.scratch.write("pipeline.toml.tmp", edit(toml));
        std::fs::rename(self.scratch.join("pipeline.toml.tmp"), self.scratch.join("pipeline.toml")).unwrap();
    }

    /// Waits until the log says `what` (the watcher logs what it does with an edit).
    fn wait_for_log(&self, what: &str) {
        wait_for(what, || self.log().contains(what));
    }
}

/// Alerts of `out/alerts.jsonl` as (alert_id, severity, miss distance).
fn alerts_of(live: &Live) -> Vec<(String, String, f64)> {
    live.scratch
        .read_jsonl("out/alerts.jsonl")
        .iter()
        .map(|a| {
            (
                a["alert_id"].as_str().unwrap().to_string(),
                a["severity"].as_str().unwrap().to_string(),
                a["miss_distance_km"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn with_watch_a_config_edit_re_inits_with_state_kept_and_a_threshold_change_applies_to_later_windows() {
    let (lines, golden) = scenario_and_golden();
    let mut live = Live::new(plugins::CLASSIFIER);
    live.start_watching();
    let parts = chunks(&lines, 4);
    live.feed(parts[0]);
    // 599,999 ms suppresses exactly what 600,000 does for minute windows: the output must not change,
    // which it would if the re-init lost the pairs the classifier remembers.
    live.edit(|t| t.replace("config = { red_km = 1.0 }", "config = { red_km = 1.0, suppress_ms = 599999 }"));
    live.wait_for_log("re-init, state kept");
    live.wait_for_log("applied");
    live.feed(parts[1]);
    live.stop();
    live.finish(&[parts[2], parts[3]].concat());
    live.assert_alerts_equal(&golden);

    // Now a threshold: YELLOW below 3 km instead of 5. Alerts written before the edit used 5 km, those after 3 km.
    let mut live = Live::new(plugins::CLASSIFIER);
    live.start_watching();
    live.feed(parts[0]);
    live.feed(parts[1]);
    let before = alerts_of(&live).len();
    live.edit(|t| t.replace("config = { red_km = 1.0 }", "config = { red_km = 1.0, yellow_km = 3.0 }"));
    live.wait_for_log("applied");
    live.feed(parts[2]);
    live.stop();
    live.finish(parts[3]);
    let alerts = alerts_of(&live);
    let (old, new) = alerts.split_at(before);
    assert!(old.iter().any(|(_, severity, miss)| severity == "YELLOW" && *miss >= 3.0), "the scenario has wide YELLOWs before the edit");
    assert!(!new.is_empty(), "alerts after the edit");
    for (id, severity, miss) in new {
        assert!(*miss < 3.0, "alert {id} ({severity}, {miss} km) was classified with the old threshold after the edit");
    }
    assert_eq!(alerts.iter().map(|a| &a.0).collect::<BTreeSet<_>>().len(), alerts.len(), "duplicate alert ids");
}

#[test]
fn with_watch_a_rewire_adds_a_postgres_sink_and_the_file_sink_is_undisturbed() {
    let (lines, golden) = scenario_and_golden();
    let table = sda_testkit::postgres::ScratchTable::new("swap_test_alerts");
    let mut live = Live::new(plugins::CLASSIFIER);
    live.start_watching();
    let parts = chunks(&lines, 3);
    live.feed(parts[0]);
    let delivered_before: BTreeSet<String> = alerts_of(&live).into_iter().map(|a| a.0).collect();
    live.edit(|t| {
        t + &format!(
            "[sinks.db]\ntype = \"postgres\"\ninputs = [\"classifier\"]\nurl = {:?}\ntable = {:?}\n",
            sda_testkit::postgres::url(),
            table.0
        )
    });
    live.wait_for_log("rebuilding the graph");
    wait_for("the rebuilt pipeline", || live.status().is_some_and(|s| s["tasks"]["observations-0"]["state"] == "running"));
    live.feed(parts[1]);
    live.stop();
    // A plain run of the edited file carries on from the rebuilt graph's checkpoints.
    live.finish(parts[2]);
    live.assert_alerts_equal(&golden);
    let all: BTreeSet<String> = alerts_of(&live).into_iter().map(|a| a.0).collect();
    let expected: Vec<String> = all.difference(&delivered_before).cloned().collect();
    assert!(!expected.is_empty() && !delivered_before.is_empty());
    assert_eq!(table.alert_ids(), expected, "the new sink gets every alert from the rewire on, once");

    // `plan --diff` says what the edit did.
    live.scratch.write("old.toml", pipeline_toml(Some(&live.address), plugins::CLASSIFIER));
    let out = sda(live.scratch.path()).args(["plan", "old.toml", "--diff", "pipeline.toml"]).output().unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("sink `db`: added (postgres table") && stdout.contains("rebuild the graph"), "{stdout}{}", text(&out.stderr));
}

#[test]
fn with_watch_an_invalid_or_unappliable_edit_leaves_the_pipeline_untouched() {
    let (lines, golden) = scenario_and_golden();
    let mut live = Live::new(plugins::CLASSIFIER);
    live.start_watching();
    let parts = chunks(&lines, 3);
    live.feed(parts[0]);
    let good = std::fs::read_to_string(live.scratch.join("pipeline.toml")).unwrap();
    live.edit(|t| t.replace("inputs = [\"correlator\"]", "inputs = [\"correlatr\"]"));
    live.wait_for_log("the saved pipeline file has problems; the running pipeline is unchanged");
    assert!(live.log().contains("correlatr"), "{}", live.log());
    live.edit(|_| good.replace("key_field = \"observation_id\"", "key_field = \"object_id\""));
    live.wait_for_log("edit not applied, the running pipeline is unchanged; restart to apply it");
    live.edit(|_| good.clone());
    live.feed(parts[1]);
    live.stop();
    live.finish(parts[2]);
    live.assert_alerts_equal(&golden);
}

#[test]
fn with_watch_a_removed_operator_keeps_its_state_until_drop_state_and_gets_it_back_when_re_added() {
    let (lines, _) = scenario_and_golden();
    let mut live = Live::new(plugins::CLASSIFIER);
    let sightings = format!(
        "[operators.sightings]\nplugin = {:?}\ninputs = [\"observations\"]\n[sinks.counts]\ntype = \"file\"\ninputs = \
            [\"sightings\"]\npath = \"out/counts.jsonl\"\n",
        plugins::COUNTER
    );
    // Counted per object: the source's key is the object id.
    let base = std::fs::read_to_string(live.scratch.join("pipeline.toml"))
        .unwrap()
        .replace("key_field = \"observation_id\"", "key_field = \"object_id\"");
    live.scratch.write("pipeline.toml", format!("{base}{sightings}"));
    live.start_watching();
    let parts = chunks(&lines, 4);
    live.feed(parts[0]);

    live.edit(|_| base.clone());
    live.wait_for_log("rebuilding the graph");
    wait_for("the rebuilt pipeline", || live.status().is_some_and(|s| s["operators"].get("sightings").is_none()));
    live.feed(parts[1]);
    let kept = live.newest_checkpoint();
    assert!(kept.operators.iter().any(|o| o.name == "sightings"), "the removed operator's state is kept");

    let rebuilds = live.log().matches("rebuilding the graph").count();
    live.edit(|_| format!("{base}{sightings}"));
    wait_for("the second rebuild", || live.log().matches("rebuilding the graph").count() > rebuilds);
    wait_for("the rebuilt pipeline", || live.status().is_some_and(|s| s["operators"].get("sightings").is_some()));
    live.feed(parts[2]);
    // Back with its state: every object's count goes on from where it was (records read while it was
    // gone were not counted), never from 1 again.
    let mut last: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    for count in live.scratch.read_jsonl("out/counts.jsonl") {
        let (key, n) = (count["key"].as_str().unwrap().to_string(), count["count"].as_u64().unwrap());
        assert_eq!(n, last.get(&key).copied().unwrap_or(0) + 1, "object {key} counted {n} after {:?}", last.get(&key));
        last.insert(key, n);
    }
    assert!(last.values().any(|&n| n > 1));

    // Removed again; then a restart with --drop-state drops what the checkpoints kept.
    let rebuilds = live.log().matches("rebuilding the graph").count();
    live.edit(|_| base.clone());
    wait_for("the third rebuild", || live.log().matches("rebuilding the graph").count() > rebuilds);
    wait_for("the rebuilt pipeline", || live.status().is_some_and(|s| s["operators"].get("sightings").is_none()));
    live.stop();
    assert!(live.newest_checkpoint().operators.iter().any(|o| o.name == "sightings"));
    let out = sda(live.scratch.path()).args(["run", "--quiet", "--drop-state", "sightings"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("dropping the state of a removed operator"), "{}", text(&out.stderr));
    assert!(!live.newest_checkpoint().operators.iter().any(|o| o.name == "sightings"));
}

/// Two file sources: two tasks, each with its own correlator and classifier instances.
fn two_sources_toml(admin: Option<&str>) -> String {
    swaps(admin, plugins::CLASSIFIER)
        .remove("sources.observations")
        .observations_file("east", "east.jsonl")
        .observations_file("west", "west.jsonl")
        .set("operators.correlator", "inputs", r#"["east", "west"]"#)
        .to_string()
}

/// The scenario's lines split in two by object id.
fn split(lines: &[String]) -> (Vec<String>, Vec<String>) {
    // Lines that are not JSON (the scenario has some) go east.
    lines
        .iter()
        .cloned()
        .partition(|l| serde_json::from_str::<Value>(l).map_or(true, |v| v["object_id"].as_u64().is_some_and(|id| id % 2 == 0)))
}

fn sorted_alert_lines(scratch: &Scratch) -> Vec<String> {
    let mut lines: Vec<String> = std::fs::read_to_string(scratch.join("out/alerts.jsonl")).unwrap().lines().map(str::to_string).collect();
    lines.sort();
    lines
}

#[test]
fn a_swap_reaches_every_task_or_none() {
    let (lines, _) = scenario_and_golden();
    let (east, west) = split(&lines);
    let golden = Scratch::new();
    golden.write("east.jsonl", east.concat());
    golden.write("west.jsonl", west.concat());
    golden.write("pipeline.toml", two_sources_toml(None));
    let out = sda(golden.path()).args(["run", "--quiet"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = sorted_alert_lines(&golden);
    assert!(!expected.is_empty());

    let mut live = Live::new(plugins::CLASSIFIER);
    live.scratch.write("pipeline.toml", two_sources_toml(Some(&live.address)));
    live.scratch.write("east.jsonl", east[..east.len() / 2].concat());
    live.scratch.write("west.jsonl", west[..west.len() / 2].concat());
    live.start();
    let read_all = |live: &Live| {
        let sizes = ["east", "west"].map(|s| std::fs::metadata(live.scratch.join(&format!("{s}.jsonl"))).unwrap().len());
        live.status().is_some_and(|s| {
            s["tasks"]["east-0"]["source_offset"].as_u64() == Some(sizes[0])
                && s["tasks"]["west-0"]["source_offset"].as_u64() == Some(sizes[1])
        })
    };
    wait_for("both tasks to read their input", || read_all(&live));

    // A refusal in either task leaves both on version 1.
    let refused = live.swap("classifier", plugins::CLASSIFIER_INCOMPATIBLE);
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("failed at step `restore` in task `east-0`") || stderr.contains("failed at step `restore` in task `west-0`"),
        "{stderr}"
    );
    assert_eq!(live.operator("classifier")["digest"], digest_of(plugins::CLASSIFIER));

    let report = live.swap_ok("classifier", plugins::CLASSIFIER_V2);
    assert!(report.contains("task east-0: state version 1 -> 2") && report.contains("task west-0: state version 1 -> 2"), "{report}");
    live.scratch.append("east.jsonl", east[east.len() / 2..].concat());
    live.scratch.append("west.jsonl", west[west.len() / 2..].concat());
    wait_for("both tasks to read the rest", || read_all(&live));
    live.stop();
    live.finish(&[]);
    assert_eq!(sorted_alert_lines(&live.scratch), expected, "the alerts of an unswapped run");
}
