//! `sda-pipeline gen`: a realistic observation scenario, with the alerts an independent reference expects of it.

use crate::common::EXIT_INVALID;
use crate::text::group;
use indicatif::{ProgressBar, ProgressStyle};
use sda_scenario::generate::{KmRange, OrbitMix};
use sda_scenario::{ClassifierConfig, CorrelatorConfig, GenerateOptions};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct GenArgs {
    /// Objects in the scenario, planted ones included.
    #[arg(long, default_value_t = GenerateOptions::default().objects)]
    objects: usize,
    /// Length of the scenario, in minutes.
    #[arg(long, default_value_t = GenerateOptions::default().minutes)]
    minutes: u32,
    /// Seed of every random choice.
    #[arg(long, default_value_t = GenerateOptions::default().seed)]
    seed: u64,
    /// Where to write the observations.
    #[arg(long)]
    out: PathBuf,
    /// First epoch, Unix milliseconds.
    #[arg(long, default_value_t = GenerateOptions::default().start_ms)]
    start_ms: i64,
    /// Each object is observed once per cadence (without --sparse).
    #[arg(long, default_value_t = GenerateOptions::default().cadence_ms)]
    cadence_ms: i64,
    /// Observation times move by up to this much either way (without --sparse).
    #[arg(long, default_value_t = GenerateOptions::default().jitter_ms)]
    jitter_ms: i64,
    /// A catalogue's cadence: each object seen a few times an hour, at random gaps, by a few
    /// sensors, instead of once per --cadence-ms. Streams the observations to OUT as they are made.
    #[arg(long)]
    sparse: bool,
    /// With --sparse: mean time between two observations of an object (before the --max-gap-ms cap).
    #[arg(long, requires = "sparse", default_value_t = sda_scenario::SparseCadence::default().mean_gap_ms)]
    mean_gap_ms: i64,
    /// With --sparse: shortest time between two observations of an object; gaps are this plus a
    /// random exponential part.
    #[arg(long, requires = "sparse", default_value_t = sda_scenario::SparseCadence::default().min_gap_ms)]
    min_gap_ms: i64,
    /// With --sparse: longest time between two observations of an object.
    #[arg(long, requires = "sparse", default_value_t = sda_scenario::SparseCadence::default().max_gap_ms)]
    max_gap_ms: i64,
    /// With --sparse: how many sensors (of 8 radars for LEO, 5 telescopes above) see each object.
    #[arg(long, requires = "sparse", default_value_t = sda_scenario::SparseCadence::default().sensors_per_object)]
    sensors_per_object: usize,
    /// Skip the brute-force reference: write the observations and `<stem>.scenario.json` (with the
    /// planted pairs) only, and remove expected files an earlier run left. The way to make large
    /// scenarios: the reference is quadratic in the objects per window.
    #[arg(long)]
    no_reference: bool,
    /// Weights of the orbit regimes of background objects, as `leo=0.8,meo=0.08,geo=0.07,heo=0.05`.
    #[arg(long, value_parser = parse_orbit_mix)]
    orbit_mix: Option<OrbitMix>,
    /// Pairs planted to pass close to each other.
    #[arg(long, default_value_t = GenerateOptions::default().conjunctions)]
    conjunctions: usize,
    /// Intended miss distances of planted conjunctions, `MIN..MAX` km.
    #[arg(long, value_parser = parse_km_range)]
    conjunction_miss_km: Option<KmRange>,
    /// Fraction of planted conjunctions whose closest approach is on a window boundary.
    #[arg(long, default_value_t = GenerateOptions::default().edge_tca_fraction)]
    edge_tca_fraction: f64,
    /// Pairs flying a few km apart for the whole scenario (exercises suppression).
    #[arg(long, default_value_t = GenerateOptions::default().formations)]
    formations: usize,
    /// Separations of formation pairs, `MIN..MAX` km.
    #[arg(long, value_parser = parse_km_range)]
    formation_separation_km: Option<KmRange>,
    /// Fraction of formations drifting from YELLOW into RED range (exercises escalation).
    #[arg(long, default_value_t = GenerateOptions::default().escalating_formation_fraction)]
    escalating_formation_fraction: f64,
    /// Percent of observations delivered out of order, within the allowed lateness.
    #[arg(long, default_value_t = GenerateOptions::default().out_of_order_pct)]
    out_of_order_pct: f64,
    /// Percent of observations delivered after their window closed.
    #[arg(long, default_value_t = GenerateOptions::default().late_pct)]
    late_pct: f64,
    /// Percent of observations delivered twice.
    #[arg(long, default_value_t = GenerateOptions::default().duplicate_pct)]
    duplicate_pct: f64,
    /// Malformed lines added, as a percent of the observations.
    #[arg(long, default_value_t = GenerateOptions::default().malformed_pct)]
    malformed_pct: f64,
    /// The correlator's window length (must match the pipeline's correlator config).
    #[arg(long, default_value_t = CorrelatorConfig::default().window_ms)]
    window_ms: i64,
    /// The correlator's allowed lateness.
    #[arg(long, default_value_t = CorrelatorConfig::default().allowed_lateness_ms)]
    allowed_lateness_ms: i64,
    /// The correlator's screening distance, km.
    #[arg(long, default_value_t = CorrelatorConfig::default().screening_km)]
    screening_km: f64,
    /// The correlator's catalogue mode: how long an object's last state is carried into later
    /// windows (0: windowed mode). Defaults to 0, or to --max-gap-ms with --sparse, so that no
    /// object drops out of the catalogue between two observations.
    #[arg(long)]
    state_horizon_ms: Option<i64>,
    /// The classifier's RED threshold, km.
    #[arg(long, default_value_t = ClassifierConfig::default().red_km)]
    red_km: f64,
    /// The classifier's YELLOW threshold, km.
    #[arg(long, default_value_t = ClassifierConfig::default().yellow_km)]
    yellow_km: f64,
    /// The classifier's suppression time.
    #[arg(long, default_value_t = ClassifierConfig::default().suppress_ms)]
    suppress_ms: i64,
}

fn parse_km_range(text: &str) -> Result<KmRange, String> {
    let (min, max) = text.split_once("..").ok_or_else(|| format!("`{text}` is not a range like `0.2..4.5`"))?;
    let number = |t: &str| t.trim().parse::<f64>().map_err(|_| format!("`{t}` is not a number of km"));
    Ok(KmRange { min_km: number(min)?, max_km: number(max)? })
}

fn parse_orbit_mix(text: &str) -> Result<OrbitMix, String> {
    let mut mix = OrbitMix { leo: 0.0, meo: 0.0, geo: 0.0, heo: 0.0 };
    for part in text.split(',') {
        let (name, weight) = part.split_once('=').ok_or_else(|| format!("`{part}` is not like `leo=0.8`"))?;
        let weight: f64 = weight.trim().parse().map_err(|_| format!("`{weight}` is not a number"))?;
        match name.trim() {
            "leo" => mix.leo = weight,
            "meo" => mix.meo = weight,
            "geo" => mix.geo = weight,
            "heo" => mix.heo = weight,
            other => return Err(format!("unknown regime `{other}`: the regimes are leo, meo, geo, heo")),
        }
    }
    Ok(mix)
}

/// `gen`: writes a scenario and, unless asked not to, its expected alerts.
pub fn generate(args: &GenArgs) -> anyhow::Result<ExitCode> {
    let defaults = GenerateOptions::default();
    let sparse_cadence = args.sparse.then_some(sda_scenario::SparseCadence {
        mean_gap_ms: args.mean_gap_ms,
        min_gap_ms: args.min_gap_ms,
        max_gap_ms: args.max_gap_ms,
        sensors_per_object: args.sensors_per_object,
    });
    let options = GenerateOptions {
        objects: args.objects,
        minutes: args.minutes,
        seed: args.seed,
        start_ms: args.start_ms,
        cadence_ms: args.cadence_ms,
        jitter_ms: args.jitter_ms,
        sparse_cadence,
        orbit_mix: args.orbit_mix.unwrap_or(defaults.orbit_mix),
        conjunctions: args.conjunctions,
        conjunction_miss_km: args.conjunction_miss_km.unwrap_or(defaults.conjunction_miss_km),
        edge_tca_fraction: args.edge_tca_fraction,
        formations: args.formations,
        formation_separation_km: args.formation_separation_km.unwrap_or(defaults.formation_separation_km),
        escalating_formation_fraction: args.escalating_formation_fraction,
        out_of_order_pct: args.out_of_order_pct,
        late_pct: args.late_pct,
        duplicate_pct: args.duplicate_pct,
        malformed_pct: args.malformed_pct,
        correlator: CorrelatorConfig {
            window_ms: args.window_ms,
            allowed_lateness_ms: args.allowed_lateness_ms,
            screening_km: args.screening_km,
            state_horizon_ms: args.state_horizon_ms.unwrap_or(sparse_cadence.map_or(0, |cadence| cadence.max_gap_ms)),
            ..CorrelatorConfig::default()
        },
        classifier: ClassifierConfig { red_km: args.red_km, yellow_km: args.yellow_km, suppress_ms: args.suppress_ms },
    };
    let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(ProgressStyle::with_template("{spinner} generating: minute {pos}/{len} {wide_bar} {eta}").expect("valid template"));
    let reference_started = std::sync::atomic::AtomicBool::new(false);
    let started = Instant::now();
    let written = sda_scenario::write_scenario_with(&args.out, &options, !args.no_reference, &|step| match step {
        sda_scenario::generate::Progress::Generating { done_ms, total_ms } => {
            bar.set_length((total_ms / 60_000) as u64);
            bar.set_position((done_ms / 60_000) as u64);
        }
        sda_scenario::generate::Progress::Reference { done, total } => {
            if !reference_started.swap(true, std::sync::atomic::Ordering::Relaxed) {
                bar.set_style(
                    ProgressStyle::with_template("{spinner} computing expected alerts: window {pos}/{len} {wide_bar} {eta}")
                        .expect("valid template"),
                );
            }
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        }
    });
    bar.finish_and_clear();
    let written = match written {
        Ok(written) => written,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(EXIT_INVALID));
        }
    };
    let s = &written.summary.counts;
    let mut out = String::new();
    use std::fmt::Write as _;
    writeln!(
        out,
        "scenario (seed {}): {} objects over {} minutes{}, generated in {:.1} s",
        options.seed,
        group(options.objects as u64),
        options.minutes,
        if args.sparse { ", sparse cadence" } else { "" },
        started.elapsed().as_secs_f64()
    )?;
    writeln!(out, "  observations       {} ({} lines)", written.observations.display(), group(s.lines as u64))?;
    writeln!(
        out,
        "      {} out of order, {} late, {} duplicates, {} malformed ({} not JSON, {} breaking a rule)",
        group(s.out_of_order as u64),
        group(s.late as u64),
        group(s.duplicates as u64),
        group((s.malformed_deserialization + s.malformed_validation) as u64),
        group(s.malformed_deserialization as u64),
        group(s.malformed_validation as u64)
    )?;
    writeln!(
        out,
        "      {} planted conjunctions, {} formation pairs",
        written.summary.conjunctions.len(),
        written.summary.formations.len()
    )?;
    if options.correlator.state_horizon_ms > 0 {
        writeln!(out, "      for a correlator with state_horizon_ms = {}", options.correlator.state_horizon_ms)?;
    }
    match &written.expected {
        Some(expected) => {
            let c = &expected.reference.counts;
            writeln!(
                out,
                "  expected alerts    {}: {} ({} RED, {} YELLOW; {} suppressed)",
                expected.alerts.display(),
                group(c.alerts as u64),
                group(c.red as u64),
                group(c.yellow as u64),
                group(c.suppressed as u64)
            )?;
            writeln!(out, "  expected candidates {}: {}", expected.candidates.display(), group(c.candidates as u64))?;
        }
        None => writeln!(out, "  no expected alerts or candidates (--no-reference)")?,
    }
    writeln!(out, "  summary            {}", written.scenario.display())?;
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
