//! Remote tier tests: put/get/list/delete on a directory (file:// and a relative path) and on a real S3 API
//! (moto's server on loopback, installed by `make test`), and the background Uploader: never blocking,
//! flush, keep-N, superseding, retries and failures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::ObjectStore;
use object_store::local::LocalFileSystem;
use object_store::throttle::{ThrottleConfig, ThrottledStore};
use sda_host::checkpoint::remote::{RemoteError, RemoteTier, RetryPolicy, Uploader};
use sda_testkit::Scratch;
use sda_testkit::moto::{MotoServer, free_port, unique_bucket};

fn ckpt(folder: &str, seq: u64) -> String {
    format!("{folder}/ckpt-{seq:020}.sdackpt")
}

fn payload(text: &str) -> Bytes {
    Bytes::from(text.as_bytes().to_vec())
}

/// Polls `done` until it holds, panicking with `what` after `timeout`.
fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The same contract on every kind of tier.
fn round_trip(tier: &RemoteTier) {
    let a1 = ckpt("pipe/task-1", 1);
    let a2 = ckpt("pipe/task-1", 2);
    assert_eq!(tier.get(&a1).unwrap(), None, "nothing stored yet");
    assert_eq!(tier.list("").unwrap(), Vec::<String>::new());
    assert_eq!(tier.list("pipe/task-1").unwrap(), Vec::<String>::new(), "listing a folder that does not exist");

    tier.put(&a2, payload("second")).unwrap();
    tier.put(&a1, payload("first")).unwrap();
    assert_eq!(tier.get(&a1).unwrap().as_deref(), Some(&b"first"[..]));
    assert_eq!(tier.get(&a2).unwrap().as_deref(), Some(&b"second"[..]));

    // Overwrite is whole.
    tier.put(&a1, payload("first, rewritten")).unwrap();
    assert_eq!(tier.get(&a1).unwrap().as_deref(), Some(&b"first, rewritten"[..]));

    // Binary and empty objects.
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    tier.put("pipe/task-2/blob.bin", Bytes::from(binary.clone())).unwrap();
    tier.put("pipe/task-2/empty", Bytes::new()).unwrap();
    assert_eq!(tier.get("pipe/task-2/blob.bin").unwrap(), Some(binary));
    assert_eq!(tier.get("pipe/task-2/empty").unwrap(), Some(Vec::new()));

    // Scoping is by whole segments: `pipe/task-1` must not list `pipe/task-10`; nested folders are listed.
    tier.put("pipe/task-10/x", payload("x")).unwrap();
    tier.put("pipe/task-1/sub/deep", payload("d")).unwrap();
    tier.put("other/y", payload("y")).unwrap();
    assert_eq!(tier.list("pipe/task-1").unwrap(), vec![a1.clone(), a2.clone(), "pipe/task-1/sub/deep".to_string()]);
    assert_eq!(tier.list("pipe/task-1/").unwrap(), tier.list("pipe/task-1").unwrap(), "a trailing slash means the same folder");
    assert_eq!(tier.list("pipe/task-10").unwrap(), vec!["pipe/task-10/x".to_string()]);
    assert_eq!(tier.list("nowhere").unwrap(), Vec::<String>::new());
    let all = tier.list("").unwrap();
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "list is sorted");
    assert_eq!(
        all,
        vec![
            "other/y".to_string(),
            a1.clone(),
            a2.clone(),
            "pipe/task-1/sub/deep".to_string(),
            "pipe/task-10/x".to_string(),
            "pipe/task-2/blob.bin".to_string(),
            "pipe/task-2/empty".to_string(),
        ]
    );

    tier.delete(&a1).unwrap();
    assert_eq!(tier.get(&a1).unwrap(), None);
    tier.delete(&a1).unwrap(); // absent is not an error
    tier.delete("never/was/there").unwrap();
    assert_eq!(tier.list("pipe/task-1").unwrap(), vec![a2.clone(), "pipe/task-1/sub/deep".to_string()]);

    // Names the store would not keep as written are refused, naming the store and the name.
    for bad in ["", "/abs/name", "a//b", "a/../b", "trailing/"] {
        let err = tier.put(bad, payload("no")).unwrap_err();
        assert!(matches!(err, RemoteError::InvalidName { .. }), "{bad:?}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(tier.url()) && msg.contains(&format!("`{bad}`")), "{msg}");
    }
}

#[test]
fn file_url_tier_round_trip() {
    let scratch = Scratch::new();
    let dir = scratch.join("remote/store");
    let url = format!("file://{}", dir.display());
    let tier = RemoteTier::from_url(&url, scratch.path()).unwrap();
    assert!(dir.is_dir(), "the directory is created");
    assert_eq!(tier.url(), format!("file://{}", dir.canonicalize().unwrap().display()));
    round_trip(&tier);
    // Objects are plain files below the directory: another machine with the directory mounted reads them.
    assert_eq!(std::fs::read(dir.join("other/y")).unwrap(), b"y");
}

#[test]
fn plain_relative_path_is_resolved_against_the_pipeline_folder() {
    let scratch = Scratch::new();
    let tier = RemoteTier::from_url("ckpt/remote", scratch.path()).unwrap();
    let dir = scratch.join("ckpt/remote");
    assert!(dir.is_dir(), "the directory is created");
    assert_eq!(tier.url(), format!("file://{}", dir.canonicalize().unwrap().display()));
    round_trip(&tier);
    assert_eq!(std::fs::read(dir.join("pipe/task-1").join(ckpt("x", 2).trim_start_matches("x/"))).unwrap(), b"second");

    // A second tier on the same directory (another process, say) sees the same objects.
    let again = RemoteTier::from_url(dir.to_str().unwrap(), std::path::Path::new("/unused")).unwrap();
    assert_eq!(again.list("").unwrap(), tier.list("").unwrap());
}

#[test]
fn s3_tier_round_trip_against_a_real_s3_server() {
    let moto = MotoServer::start();
    let bucket = unique_bucket("round-trip");
    moto.create_bucket(&bucket);
    let url = format!("s3://{bucket}/checkpoints/site-a");
    let tier = RemoteTier::from_url_with_env(&url, std::path::Path::new("/unused"), moto.env()).unwrap();
    assert_eq!(tier.url(), url);
    round_trip(&tier);

    // The prefix really is applied: the bucket's root sees the objects under it, another prefix sees none.
    let root = RemoteTier::from_url_with_env(&format!("s3://{bucket}"), std::path::Path::new("/"), moto.env()).unwrap();
    let under_root = root.list("").unwrap();
    assert!(!under_root.is_empty() && under_root.iter().all(|n| n.starts_with("checkpoints/site-a/")), "{under_root:?}");
    assert_eq!(root.get("checkpoints/site-a/other/y").unwrap().as_deref(), Some(&b"y"[..]));
    let elsewhere =
        RemoteTier::from_url_with_env(&format!("s3://{bucket}/checkpoints/site-b/"), std::path::Path::new("/"), moto.env()).unwrap();
    assert_eq!(elsewhere.url(), format!("s3://{bucket}/checkpoints/site-b"));
    assert_eq!(elsewhere.list("").unwrap(), Vec::<String>::new());

    // The Uploader against S3, keep-N included (S3 deletes go through the bulk DeleteObjects API).
    let uploader = Uploader::start(Arc::new(tier), 2);
    for seq in 1..=4 {
        uploader.submit(ckpt("pipe/t", seq), payload(&format!("ckpt {seq}")));
        uploader.flush(Duration::from_secs(30)).unwrap();
    }
    let tier = uploader.tier();
    assert_eq!(tier.list("pipe/t").unwrap(), vec![ckpt("pipe/t", 3), ckpt("pipe/t", 4)]);
    assert_eq!(tier.get(&ckpt("pipe/t", 4)).unwrap().as_deref(), Some(&b"ckpt 4"[..]));
    let stats = uploader.stats();
    assert_eq!((stats.uploaded, stats.failed, stats.pruned), (4, 0, 2), "{stats:?}");

    // A bucket that does not exist: an error naming the store and the object, not a panic or a None.
    let missing =
        RemoteTier::from_url_with_env(&format!("s3://{}", unique_bucket("missing")), std::path::Path::new("/"), moto.env()).unwrap();
    let msg = missing.put("a/b", payload("x")).unwrap_err().to_string();
    assert!(msg.contains(missing.url()) && msg.contains("`a/b`"), "{msg}");
    // object_store calls a missing bucket NotFound, like a missing object; it must not read as "no checkpoint".
    let msg = missing.get("a/b").expect_err("a missing bucket is not an absent object").to_string();
    assert!(msg.contains(missing.url()) && msg.contains("get of `a/b`") && msg.contains("NoSuchBucket"), "{msg}");
    let msg = missing.list("a").expect_err("a missing bucket is not an empty one").to_string();
    assert!(msg.contains(missing.url()) && msg.contains("list of `a`"), "{msg}");
}

#[test]
fn urls_that_cannot_work_are_refused_with_the_url_named() {
    let scratch = Scratch::new();
    for (url, expect) in [
        ("gs://bucket/prefix", "unsupported URL scheme `gs://`"),
        ("s3:///prefix", "no bucket name"),
        ("s3://bucket/a//b", "prefix `a//b`"),
        ("file://relative/dir", "absolute path"),
        ("", "empty"),
    ] {
        let err = RemoteTier::from_url(url, scratch.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&format!("`{url}`")) && msg.contains(expect), "{url}: {msg}");
    }
    // A path under a regular file cannot be created.
    scratch.write("a-file", "x");
    let msg = RemoteTier::from_url("a-file/remote", scratch.path()).unwrap_err().to_string();
    assert!(msg.contains("`a-file/remote`") && msg.contains("cannot create the directory"), "{msg}");
}

/// An S3 tier whose endpoint is a closed loopback port.
fn unreachable_s3_tier() -> RemoteTier {
    let port = free_port();
    let env = [
        ("AWS_ACCESS_KEY_ID", "testing".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
        ("AWS_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_CONNECT_TIMEOUT", "2s".to_string()),
        ("NOT_AWS_IGNORED", "whatever".to_string()),
    ];
    RemoteTier::from_url_with_env("s3://unreachable/ckpt", std::path::Path::new("/"), env).unwrap()
}

#[test]
fn errors_of_an_unreachable_store_name_the_url_and_the_object() {
    let tier = unreachable_s3_tier();
    let started = Instant::now();
    for (op, err) in [
        ("get", tier.get("pipe/t/ckpt-1").unwrap_err()),
        ("put", tier.put("pipe/t/ckpt-1", payload("x")).unwrap_err()),
        ("delete", tier.delete("pipe/t/ckpt-1").unwrap_err()),
    ] {
        let msg = err.to_string();
        assert!(matches!(err, RemoteError::Store { .. }), "{msg}");
        assert!(msg.contains("s3://unreachable/ckpt") && msg.contains(&format!("{op} of `pipe/t/ckpt-1`")), "{msg}");
    }
    let msg = tier.list("pipe").unwrap_err().to_string();
    assert!(msg.contains("s3://unreachable/ckpt") && msg.contains("list of `pipe`"), "{msg}");
    assert!(started.elapsed() < Duration::from_secs(30), "object_store's own retries are bounded: {:?}", started.elapsed());
}

/// A directory tier whose every put takes `put` (and list/delete a little time too), like a slow network;
/// read what it stored through `direct(scratch)`. (object_store's ThrottledStore panics on a `get` from a
/// LocalFileSystem, so reads go around it.)
fn slow_tier(scratch: &Scratch, put: Duration) -> Arc<RemoteTier> {
    let dir = scratch.join("slow");
    std::fs::create_dir_all(&dir).unwrap();
    let config = ThrottleConfig {
        wait_put_per_call: put,
        wait_list_with_delimiter_per_call: Duration::from_millis(5),
        wait_delete_per_call: Duration::from_millis(5),
        ..Default::default()
    };
    let store: Arc<dyn ObjectStore> = Arc::new(ThrottledStore::new(LocalFileSystem::new_with_prefix(&dir).unwrap(), config));
    Arc::new(RemoteTier::from_store("slow://test", store).unwrap())
}

/// The directory behind `slow_tier`, unthrottled.
fn direct(scratch: &Scratch) -> RemoteTier {
    RemoteTier::from_url("slow", scratch.path()).unwrap()
}

#[test]
fn submit_never_waits_for_the_store_and_flush_waits_for_every_upload() {
    let scratch = Scratch::new();
    let per_put = Duration::from_millis(40);
    let uploader = Uploader::start(slow_tier(&scratch, per_put), 3);
    let names: Vec<String> = (0..50).map(|i| ckpt(&format!("pipe/task-{i:02}"), 7)).collect();

    let started = Instant::now();
    for name in &names {
        uploader.submit(name.clone(), payload(name));
    }
    let submitting = started.elapsed();
    let queued = uploader.stats();
    uploader.flush(Duration::from_secs(60)).unwrap();
    let total = started.elapsed();

    // 50 uploads take at least 50 x 40 ms = 2 s; 50 submits must take a tiny fraction of that.
    assert!(total >= per_put * 50, "the store was not slow? {total:?}");
    assert!(submitting < Duration::from_millis(100) && submitting * 20 < total, "submitting took {submitting:?} of {total:?}");
    assert!(queued.queued + queued.in_flight.iter().count() + queued.uploaded as usize == 50 && queued.uploaded < 10, "{queued:?}");

    let stats = uploader.stats();
    assert_eq!((stats.uploaded, stats.failed, stats.superseded, stats.queued, stats.in_flight.clone()), (50, 0, 0, 0, None), "{stats:?}");
    assert_eq!(uploader.tier().list("pipe").unwrap(), names, "every upload is there once flush returns");
    let tier = direct(&scratch);
    for name in &names {
        assert_eq!(tier.get(name).unwrap().as_deref(), Some(name.as_bytes()));
    }
}

#[test]
fn flush_that_times_out_names_what_is_left() {
    let scratch = Scratch::new();
    let uploader = Uploader::start(slow_tier(&scratch, Duration::from_millis(600)), 0);
    uploader.submit(ckpt("p/a", 1), payload("a"));
    uploader.submit(ckpt("p/b", 1), payload("b"));
    let started = Instant::now();
    let err = uploader.flush(Duration::from_millis(100)).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(500), "flush overran its timeout: {:?}", started.elapsed());
    let msg = err.to_string();
    assert!(matches!(err, RemoteError::FlushTimeout { ref pending, .. } if pending.len() == 2), "{msg}");
    assert!(msg.contains("slow://test") && msg.contains(&ckpt("p/a", 1)) && msg.contains(&ckpt("p/b", 1)), "{msg}");
    uploader.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(uploader.stats().uploaded, 2);
}

#[test]
fn keep_n_deletes_the_oldest_of_the_same_folder_only() {
    let scratch = Scratch::new();
    let tier = Arc::new(RemoteTier::from_url("remote", scratch.path()).unwrap());
    // Left by an earlier run, and a neighbour folder that must not be touched.
    tier.put(&ckpt("pipe/a", 0), payload("old")).unwrap();
    for seq in 1..=5 {
        tier.put(&ckpt("pipe/b", seq), payload("b")).unwrap();
    }
    tier.put("pipe/a/nested/keep-me", payload("nested")).unwrap();

    let uploader = Uploader::start(Arc::clone(&tier), 3);
    for seq in 1..=6 {
        uploader.submit(ckpt("pipe/a", seq), payload(&format!("a{seq}")));
        uploader.flush(Duration::from_secs(30)).unwrap();
    }
    assert_eq!(
        tier.list("pipe/a").unwrap(),
        vec![ckpt("pipe/a", 4), ckpt("pipe/a", 5), ckpt("pipe/a", 6), "pipe/a/nested/keep-me".to_string()],
        "the newest 3 of the folder stay; subfolders are not its checkpoints"
    );
    assert_eq!(tier.list("pipe/b").unwrap().len(), 5, "another folder is not pruned");
    let stats = uploader.stats();
    assert_eq!((stats.uploaded, stats.pruned, stats.failed), (6, 4, 0), "{stats:?}");

    // A fresh start whose sequence is lower than what the folder holds: the checkpoint just uploaded is
    // never the one deleted.
    uploader.submit(ckpt("pipe/b", 0), payload("restarted"));
    uploader.flush(Duration::from_secs(30)).unwrap();
    assert_eq!(tier.list("pipe/b").unwrap(), vec![ckpt("pipe/b", 0), ckpt("pipe/b", 4), ckpt("pipe/b", 5)]);
}

#[test]
fn a_newer_checkpoint_supersedes_queued_older_ones_of_its_folder() {
    let scratch = Scratch::new();
    let uploader = Uploader::start(slow_tier(&scratch, Duration::from_millis(400)), 0);
    uploader.submit(ckpt("pipe/a", 1), payload("a1"));
    wait_for("the first upload to start", Duration::from_secs(10), || uploader.stats().in_flight.is_some());
    assert_eq!(uploader.stats().in_flight, Some(ckpt("pipe/a", 1)));

    // While it uploads, three more of folder a and one of folder b arrive.
    uploader.submit(ckpt("pipe/a", 2), payload("a2"));
    uploader.submit(ckpt("pipe/b", 1), payload("b1"));
    uploader.submit(ckpt("pipe/a", 3), payload("a3"));
    uploader.submit(ckpt("pipe/a", 4), payload("a4"));
    let stats = uploader.stats();
    assert_eq!((stats.superseded, stats.queued), (2, 2), "a2 and a3 are dropped at once: {stats:?}");

    uploader.flush(Duration::from_secs(30)).unwrap();
    let stats = uploader.stats();
    assert_eq!((stats.uploaded, stats.superseded, stats.failed), (3, 2, 0), "{stats:?}");
    assert_eq!(uploader.tier().list("").unwrap(), vec![ckpt("pipe/a", 1), ckpt("pipe/a", 4), ckpt("pipe/b", 1)]);
    assert_eq!(direct(&scratch).get(&ckpt("pipe/a", 4)).unwrap().as_deref(), Some(&b"a4"[..]));
}

#[test]
fn a_failing_store_counts_failures_and_never_blocks_the_caller() {
    let policy = RetryPolicy { attempts: 2, first_backoff: Duration::from_millis(20), max_backoff: Duration::from_millis(20) };
    let uploader = Uploader::start_with(Arc::new(unreachable_s3_tier()), 3, policy);
    let started = Instant::now();
    for task in ["t1", "t2", "t3"] {
        uploader.submit(ckpt(&format!("pipe/{task}"), 1), payload(task));
    }
    let submitting = started.elapsed();
    assert!(submitting < Duration::from_millis(50), "submit waited for the store: {submitting:?}");

    let err = uploader.flush(Duration::from_secs(120)).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, RemoteError::UploadsFailed { count: 3, ref failures, .. } if failures.len() == 3), "{msg}");
    assert!(msg.contains("s3://unreachable/ckpt") && msg.contains(&ckpt("pipe/t2", 1)), "{msg}");
    let stats = uploader.stats();
    assert_eq!((stats.uploaded, stats.failed, stats.retried, stats.superseded), (0, 3, 3, 0), "{stats:?}");
    let last = stats.last_error.expect("the last error is kept");
    assert!(last.contains("s3://unreachable/ckpt") && last.contains(&ckpt("pipe/t3", 1)), "{last}");

    // Reported once: a later flush with nothing new is clean, and the uploader still takes work.
    uploader.flush(Duration::from_secs(1)).unwrap();
    let started = Instant::now();
    uploader.submit(ckpt("pipe/t1", 2), payload("again"));
    assert!(started.elapsed() < Duration::from_millis(50));
    assert!(uploader.flush(Duration::from_secs(120)).is_err());
    assert_eq!(uploader.stats().failed, 4);
}

#[test]
fn an_upload_that_fails_for_a_while_is_retried_until_it_succeeds() {
    let scratch = Scratch::new();
    let tier = Arc::new(RemoteTier::from_url("remote", scratch.path()).unwrap());
    // A regular file where the checkpoint's folder should be: every put fails until it is removed.
    let blocker = scratch.write("remote/pipe", "in the way");
    let policy = RetryPolicy { attempts: 50, first_backoff: Duration::from_millis(20), max_backoff: Duration::from_millis(40) };
    let uploader = Uploader::start_with(Arc::clone(&tier), 3, policy);
    uploader.submit(ckpt("pipe/t", 1), payload("made it"));
    wait_for("a failed try", Duration::from_secs(10), || uploader.stats().retried >= 2);
    std::fs::remove_file(blocker).unwrap();
    uploader.flush(Duration::from_secs(30)).unwrap();
    let stats = uploader.stats();
    assert_eq!((stats.uploaded, stats.failed), (1, 0), "{stats:?}");
    assert!(stats.retried >= 2);
    assert_eq!(tier.get(&ckpt("pipe/t", 1)).unwrap().as_deref(), Some(&b"made it"[..]));
}

#[test]
fn a_newer_checkpoint_replaces_one_that_is_being_retried() {
    let scratch = Scratch::new();
    let tier = Arc::new(RemoteTier::from_url("remote", scratch.path()).unwrap());
    let blocker = scratch.write("remote/pipe", "in the way");
    let policy = RetryPolicy { attempts: 1000, first_backoff: Duration::from_millis(10), max_backoff: Duration::from_millis(10) };
    let uploader = Uploader::start_with(Arc::clone(&tier), 0, policy);
    uploader.submit(ckpt("pipe/t", 1), payload("stale"));
    wait_for("a failed try", Duration::from_secs(10), || uploader.stats().retried >= 1);
    std::fs::remove_file(blocker).unwrap();
    uploader.submit(ckpt("pipe/t", 2), payload("fresh"));
    uploader.flush(Duration::from_secs(30)).unwrap();
    let stats = uploader.stats();
    assert_eq!((stats.superseded, stats.failed), (1, 0), "{stats:?}");
    assert_eq!(tier.list("pipe").unwrap(), vec![ckpt("pipe/t", 2)]);
}

#[test]
fn dropping_the_uploader_finishes_the_upload_in_hand_and_stops() {
    let scratch = Scratch::new();
    let tier = slow_tier(&scratch, Duration::from_millis(300));
    let uploader = Uploader::start(Arc::clone(&tier), 0);
    for task in 0..5 {
        uploader.submit(ckpt(&format!("pipe/t{task}"), 1), payload("x"));
    }
    wait_for("the first upload to start", Duration::from_secs(10), || uploader.stats().in_flight.is_some());
    let started = Instant::now();
    drop(uploader);
    let stopping = started.elapsed();
    assert!(stopping < Duration::from_millis(1500), "drop took {stopping:?}");
    assert_eq!(tier.list("pipe").unwrap(), vec![ckpt("pipe/t0", 1)], "the upload in hand completes, the queued ones are abandoned");
}

#[test]
fn the_tier_works_from_inside_an_async_runtime_too() {
    let scratch = Scratch::new();
    let tier = Arc::new(RemoteTier::from_url("remote", scratch.path()).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let listed = rt.block_on(async {
        tier.put("a/b", payload("inside")).unwrap();
        tier.list("a").unwrap()
    });
    assert_eq!(listed, vec!["a/b".to_string()]);
    // The last reference dropped inside a runtime must not panic either.
    rt.block_on(async move { drop(tier) });
}

#[test]
fn a_long_outage_reports_every_failure_counted_and_the_last_ones_named() {
    let scratch = Scratch::new();
    let tier = Arc::new(RemoteTier::from_url("remote", scratch.path()).unwrap());
    scratch.write("remote/pipe", "in the way"); // every put under pipe/ fails at once
    let policy = RetryPolicy { attempts: 1, first_backoff: Duration::ZERO, max_backoff: Duration::ZERO };
    let uploader = Uploader::start_with(tier, 3, policy);
    for task in 0..40 {
        uploader.submit(ckpt(&format!("pipe/t{task:02}"), 1), payload("x"));
    }
    let err = uploader.flush(Duration::from_secs(30)).unwrap_err();
    let msg = err.to_string();
    let RemoteError::UploadsFailed { count, failures, .. } = err else { panic!("{msg}") };
    assert_eq!(count, 40);
    assert!(failures.len() < 40 && failures.last().unwrap().contains(&ckpt("pipe/t39", 1)), "{failures:?}");
    assert!(msg.contains("40 upload(s) failed") && msg.contains("the last ones"), "{msg}");
    assert_eq!(uploader.stats().failed, 40);
}
