//! Observation parse throughput: the fast scanner on the generator's field order, on shuffled orders, on shuffled orders with other members, and the general path on the same lines.
//!
//! Each case parses the same 1,000 observations (valid, LEO to GEO, the numbers written as the
//! scenario generator writes them: 6 decimals of km, 9 of km/s) laid out differently; the general
//! path is serde_json with raw values, which every payload took before the scanner learned it.
//!
//! Run: `cargo bench -p correlator --bench parse` (native; a plugin runs the same code in wasm,
//! slower by a roughly constant factor).

use correlator::observation::{parse, parse_general};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const LINES: usize = 1_000;

/// A small deterministic generator (xorshift64*), so the lines are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A random direction scaled to `length`.
    fn vector(&mut self, length: f64) -> [f64; 3] {
        let v = [self.range(-1.0, 1.0), self.range(-1.0, 1.0), self.range(-1.0, 1.0) + 1e-3];
        let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        v.map(|c| c / norm * length)
    }
}

/// Each observation as its six `"name":value` members, in the generator's order.
fn members(rng: &mut Rng, n: usize) -> Vec<String> {
    let (radius, speed) = (rng.range(6_700.0, 42_000.0), rng.range(3.0, 7.8));
    let (r, v) = (rng.vector(radius), rng.vector(speed));
    vec![
        format!("\"observation_id\":\"obs-{n:08}\""),
        format!("\"object_id\":{}", 40_000 + rng.below(1_000)),
        format!("\"sensor_id\":\"radar-{}\"", rng.below(8)),
        format!("\"epoch_ms\":{}", 1_767_225_600_000i64 + 10_000 * n as i64),
        format!("\"position_km\":[{:.6},{:.6},{:.6}]", r[0], r[1], r[2]),
        format!("\"velocity_km_s\":[{:.9},{:.9},{:.9}]", v[0], v[1], v[2]),
    ]
}

fn shuffle<T>(rng: &mut Rng, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

/// Three members a real feed might add: a string with escapes, a nested object, a number.
fn extras(rng: &mut Rng, n: usize) -> [String; 3] {
    [
        format!("\"feed\":\"site \\\"north\\\"\\tband {}\"", rng.below(4)),
        format!("\"quality\":{{\"snr_db\":{:.1},\"flags\":[true,null],\"mode\":\"track\"}}", rng.range(3.0, 30.0)),
        format!("\"seq\":{n}"),
    ]
}

/// The three layouts of the same observations.
struct Lines {
    generator: Vec<Vec<u8>>,
    shuffled: Vec<Vec<u8>>,
    shuffled_extra: Vec<Vec<u8>>,
}

fn lines() -> Lines {
    let mut rng = Rng(0x5eed_0bad_cafe_f00d);
    let object = |members: &[String]| format!("{{{}}}", members.join(",")).into_bytes();
    let (mut generator, mut shuffled, mut shuffled_extra) = (Vec::new(), Vec::new(), Vec::new());
    for n in 0..LINES {
        let mut m = members(&mut rng, n);
        generator.push(object(&m));
        shuffle(&mut rng, &mut m);
        shuffled.push(object(&m));
        for extra in extras(&mut rng, n) {
            let at = rng.below(m.len() + 1);
            m.insert(at, extra);
        }
        shuffled_extra.push(object(&m));
    }
    // A fast wrong answer is no result: every layout reads to the same observations, on both paths.
    for (i, line) in generator.iter().enumerate() {
        let expected = parse_general(line).unwrap_or_else(|f| panic!("{}: {f:?}", String::from_utf8_lossy(line)));
        for other in [line, &shuffled[i], &shuffled_extra[i]] {
            assert_eq!(parse(other).as_ref(), Ok(&expected), "{}", String::from_utf8_lossy(other));
            assert_eq!(parse_general(other).as_ref(), Ok(&expected), "{}", String::from_utf8_lossy(other));
        }
    }
    Lines { generator, shuffled, shuffled_extra }
}

fn parse_all(lines: &[Vec<u8>], parse: fn(&[u8]) -> Result<correlator::observation::Observation, sda_guest::Failure>) {
    for line in lines {
        black_box(parse(black_box(line)).ok());
    }
}

fn bench(c: &mut Criterion) {
    let lines = lines();
    let mut group = c.benchmark_group("observation - parse");
    group.throughput(Throughput::Elements(LINES as u64));
    group.bench_function("generator order", |b| b.iter(|| parse_all(&lines.generator, parse)));
    group.bench_function("shuffled order", |b| b.iter(|| parse_all(&lines.shuffled, parse)));
    group.bench_function("shuffled + 3 extra members", |b| b.iter(|| parse_all(&lines.shuffled_extra, parse)));
    group.bench_function("general path - generator order", |b| b.iter(|| parse_all(&lines.generator, parse_general)));
    group.bench_function("general path - shuffled + 3 extra members", |b| b.iter(|| parse_all(&lines.shuffled_extra, parse_general)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
