//! From the frame of the alert's states (TEME, EME2000 or GCRF) to the CDM's REF_FRAME (EME2000 or GCRF), and back.
//!
//! CCSDS 508.0-B-1 Table 3-3 allows REF_FRAME = GCRF, EME2000 or ITRF only; states from element sets through SGP4
//! are in TEME, so they are rotated: TEME -> true of date (equation of the equinoxes, IAU 1982 with the 1994
//! terms) -> mean of date (IAU 1980 nutation, all 106 terms) -> EME2000 (IAU 1976 precession), the IAU-76/FK5
//! reduction of Vallado, "Fundamentals of Astrodynamics and Applications" (2013), section 3.7, and of Vallado et al.
//! (2006), "Revisiting Spacetrack Report #3", AIAA 2006-6753. GCRF is EME2000 with the IERS frame bias (at most
//! 23 mas: 0.8 m at 7000 km, 3.5 m at GEO), applied here rather than neglected.
//!
//! Accuracy (see the README): without the IERS corrections dPsi/dEps to the IAU 1980 nutation (celestial pole
//! offsets, about 0.05" in 2004), a state is off by about 1e-7 of its radius: 0.9 m on Vallado's worked example
//! (radius 10,208 km), about 0.7 m in LEO and 4 m at GEO. The rotation's rate (precession, about 1.5e-11 rad/s)
//! is neglected for velocities, as Vallado's teme2eci does: under 1e-4 m/s at GEO.
//!
//! ITRF is refused by the operator (see `Config`): without Earth orientation data, UT1 - UTC (up to 0.9 s) alone
//! would turn the states by up to 6.6e-5 rad, 0.5 km in LEO and 2.8 km at GEO.

/// A 3x3 rotation, row-major.
pub type Matrix = [[f64; 3]; 3];

const ARCSEC: f64 = std::f64::consts::PI / (180.0 * 3600.0);
const DEGREE: f64 = std::f64::consts::PI / 180.0;

/// The inertial frames the operator reads states in or writes them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// True equator, mean equinox of date: the frame of SGP4's output.
    Teme,
    /// Mean equator and equinox of J2000.0 (FK5), as CCSDS names it.
    Eme2000,
    /// The IERS Geocentric Celestial Reference Frame.
    Gcrf,
}

/// The IERS corrections to the IAU 1980 nutation (celestial pole offsets), radians. The operator has no Earth
/// orientation data and uses zero; the worked example of Vallado uses published values, and so do its tests.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PoleOffsets {
    pub d_psi: f64,
    pub d_eps: f64,
}

/// Unix milliseconds of 2000-01-01T12:00:00 UTC.
const J2000_UTC_UNIX_MS: i64 = 946_728_000_000;
/// TT - TAI, seconds.
const TT_MINUS_TAI_S: f64 = 32.184;

/// TAI - UTC in seconds from each date on (year, month, 1st, 00:00 UTC): every leap second to date, the last on
/// 2017-01-01 (IERS Bulletin C announces none since). Before 1972, 10 s: UTC then ran at a different rate, which
/// changes the precession angles by under a micro-arcsecond, nothing at the metre level.
const TAI_MINUS_UTC: [(i64, i64, f64); 28] = [
    (1972, 1, 10.0),
    (1972, 7, 11.0),
    (1973, 1, 12.0),
    (1974, 1, 13.0),
    (1975, 1, 14.0),
    (1976, 1, 15.0),
    (1977, 1, 16.0),
    (1978, 1, 17.0),
    (1979, 1, 18.0),
    (1980, 1, 19.0),
    (1981, 7, 20.0),
    (1982, 7, 21.0),
    (1983, 7, 22.0),
    (1985, 7, 23.0),
    (1988, 1, 24.0),
    (1990, 1, 25.0),
    (1991, 1, 26.0),
    (1992, 7, 27.0),
    (1993, 7, 28.0),
    (1994, 7, 29.0),
    (1996, 1, 30.0),
    (1997, 7, 31.0),
    (1999, 1, 32.0),
    (2006, 1, 33.0),
    (2009, 1, 34.0),
    (2012, 7, 35.0),
    (2015, 7, 36.0),
    (2017, 1, 37.0),
];

/// Days from 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// TAI - UTC, seconds, at `utc_ms` (Unix milliseconds).
pub fn tai_minus_utc_s(utc_ms: i64) -> f64 {
    TAI_MINUS_UTC
        .iter()
        .rev()
        .find(|(year, month, _)| utc_ms >= days_from_civil(*year, *month, 1) * 86_400_000)
        .map_or(TAI_MINUS_UTC[0].2, |(_, _, seconds)| *seconds)
}

/// Julian centuries of TT since J2000.0 (2000-01-01T12:00:00 TT) at `utc_ms`: UTC -> TAI (leap seconds) -> TT.
pub fn tt_centuries_since_j2000(utc_ms: i64) -> f64 {
    let utc_s_since_j2000_utc = (utc_ms - J2000_UTC_UNIX_MS) as f64 / 1000.0;
    // TT = UTC + (TAI - UTC) + 32.184 s, counted from the instant whose TT reading is 2000-01-01T12:00:00.
    let tt_s = utc_s_since_j2000_utc + tai_minus_utc_s(utc_ms) + TT_MINUS_TAI_S;
    tt_s / (36_525.0 * 86_400.0)
}

fn rot1(angle: f64) -> Matrix {
    let (s, c) = angle.sin_cos();
    [[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]]
}

fn rot2(angle: f64) -> Matrix {
    let (s, c) = angle.sin_cos();
    [[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]]
}

fn rot3(angle: f64) -> Matrix {
    let (s, c) = angle.sin_cos();
    [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]]
}

pub fn multiply(a: &Matrix, b: &Matrix) -> Matrix {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

pub fn transpose(m: &Matrix) -> Matrix {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in m.iter().enumerate() {
        for (j, value) in row.iter().enumerate() {
            out[j][i] = *value;
        }
    }
    out
}

pub fn apply(m: &Matrix, v: &[f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

const IDENTITY: Matrix = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

/// One term of the IAU 1980 nutation series: multipliers of (l, l', F, D, Omega), then the sine coefficient of
/// the longitude and its rate, and the cosine coefficient of the obliquity and its rate, in 0.0001" and 0.0001"
/// per Julian century.
type NutationTerm = ([i8; 5], f64, f64, f64, f64);

/// The 106 terms of the IAU 1980 theory of nutation (Seidelmann 1982, Celestial Mechanics 27, 79-106), in the
/// order of Vallado (2013), Appendix D; checked term by term against an independent public transcription.
#[rustfmt::skip]
const IAU_1980_NUTATION: [NutationTerm; 106] = [
    ([0, 0, 0, 0, 1], -171996.0, -174.2, 92025.0, 8.9), ([0, 0, 2, -2, 2], -13187.0, -1.6, 5736.0, -3.1),
    ([0, 0, 2, 0, 2], -2274.0, -0.2, 977.0, -0.5), ([0, 0, 0, 0, 2], 2062.0, 0.2, -895.0, 0.5),
    ([0, -1, 0, 0, 0], -1426.0, 3.4, 54.0, -0.1), ([1, 0, 0, 0, 0], 712.0, 0.1, -7.0, 0.0),
    ([0, 1, 2, -2, 2], -517.0, 1.2, 224.0, -0.6), ([0, 0, 2, 0, 1], -386.0, -0.4, 200.0, 0.0),
    ([1, 0, 2, 0, 2], -301.0, 0.0, 129.0, -0.1), ([0, -1, 2, -2, 2], 217.0, -0.5, -95.0, 0.3),
    ([-1, 0, 0, 2, 0], 158.0, 0.0, -1.0, 0.0), ([0, 0, 2, -2, 1], 129.0, 0.1, -70.0, 0.0),
    ([-1, 0, 2, 0, 2], 123.0, 0.0, -53.0, 0.0), ([1, 0, 0, 0, 1], 63.0, 0.1, -33.0, 0.0),
    ([0, 0, 0, 2, 0], 63.0, 0.0, -2.0, 0.0), ([-1, 0, 2, 2, 2], -59.0, 0.0, 26.0, 0.0),
    ([-1, 0, 0, 0, 1], -58.0, -0.1, 32.0, 0.0), ([1, 0, 2, 0, 1], -51.0, 0.0, 27.0, 0.0),
    ([-2, 0, 0, 2, 0], -48.0, 0.0, 1.0, 0.0), ([-2, 0, 2, 0, 1], 46.0, 0.0, -24.0, 0.0),
    ([0, 0, 2, 2, 2], -38.0, 0.0, 16.0, 0.0), ([2, 0, 2, 0, 2], -31.0, 0.0, 13.0, 0.0),
    ([2, 0, 0, 0, 0], 29.0, 0.0, -1.0, 0.0), ([1, 0, 2, -2, 2], 29.0, 0.0, -12.0, 0.0),
    ([0, 0, 2, 0, 0], 26.0, 0.0, -1.0, 0.0), ([0, 0, 2, -2, 0], -22.0, 0.0, 0.0, 0.0),
    ([-1, 0, 2, 0, 1], 21.0, 0.0, -10.0, 0.0), ([0, 2, 0, 0, 0], 17.0, -0.1, 0.0, 0.0),
    ([0, 2, 2, -2, 2], -16.0, 0.1, 7.0, 0.0), ([-1, 0, 0, 2, 1], 16.0, 0.0, -8.0, 0.0),
    ([0, 1, 0, 0, 1], -15.0, 0.0, 9.0, 0.0), ([1, 0, 0, -2, 1], -13.0, 0.0, 7.0, 0.0),
    ([0, -1, 0, 0, 1], -12.0, 0.0, 6.0, 0.0), ([2, 0, -2, 0, 0], 11.0, 0.0, 0.0, 0.0),
    ([-1, 0, 2, 2, 1], -10.0, 0.0, 5.0, 0.0), ([1, 0, 2, 2, 2], -8.0, 0.0, 3.0, 0.0),
    ([0, -1, 2, 0, 2], -7.0, 0.0, 3.0, 0.0), ([0, 0, 2, 2, 1], -7.0, 0.0, 3.0, 0.0),
    ([1, 1, 0, -2, 0], -7.0, 0.0, 0.0, 0.0), ([0, 1, 2, 0, 2], 7.0, 0.0, -3.0, 0.0),
    ([-2, 0, 0, 2, 1], -6.0, 0.0, 3.0, 0.0), ([0, 0, 0, 2, 1], -6.0, 0.0, 3.0, 0.0),
    ([2, 0, 2, -2, 2], 6.0, 0.0, -3.0, 0.0), ([1, 0, 0, 2, 0], 6.0, 0.0, 0.0, 0.0),
    ([1, 0, 2, -2, 1], 6.0, 0.0, -3.0, 0.0), ([0, 0, 0, -2, 1], -5.0, 0.0, 3.0, 0.0),
    ([0, -1, 2, -2, 1], -5.0, 0.0, 3.0, 0.0), ([2, 0, 2, 0, 1], -5.0, 0.0, 3.0, 0.0),
    ([1, -1, 0, 0, 0], 5.0, 0.0, 0.0, 0.0), ([1, 0, 0, -1, 0], -4.0, 0.0, 0.0, 0.0),
    ([0, 0, 0, 1, 0], -4.0, 0.0, 0.0, 0.0), ([0, 1, 0, -2, 0], -4.0, 0.0, 0.0, 0.0),
    ([1, 0, -2, 0, 0], 4.0, 0.0, 0.0, 0.0), ([2, 0, 0, -2, 1], 4.0, 0.0, -2.0, 0.0),
    ([0, 1, 2, -2, 1], 4.0, 0.0, -2.0, 0.0), ([1, 1, 0, 0, 0], -3.0, 0.0, 0.0, 0.0),
    ([1, -1, 0, -1, 0], -3.0, 0.0, 0.0, 0.0), ([-1, -1, 2, 2, 2], -3.0, 0.0, 1.0, 0.0),
    ([0, -1, 2, 2, 2], -3.0, 0.0, 1.0, 0.0), ([1, -1, 2, 0, 2], -3.0, 0.0, 1.0, 0.0),
    ([3, 0, 2, 0, 2], -3.0, 0.0, 1.0, 0.0), ([-2, 0, 2, 0, 2], -3.0, 0.0, 1.0, 0.0),
    ([1, 0, 2, 0, 0], 3.0, 0.0, 0.0, 0.0), ([-1, 0, 2, 4, 2], -2.0, 0.0, 1.0, 0.0),
    ([1, 0, 0, 0, 2], -2.0, 0.0, 1.0, 0.0), ([-1, 0, 2, -2, 1], -2.0, 0.0, 1.0, 0.0),
    ([0, -2, 2, -2, 1], -2.0, 0.0, 1.0, 0.0), ([-2, 0, 0, 0, 1], -2.0, 0.0, 1.0, 0.0),
    ([2, 0, 0, 0, 1], 2.0, 0.0, -1.0, 0.0), ([3, 0, 0, 0, 0], 2.0, 0.0, 0.0, 0.0),
    ([1, 1, 2, 0, 2], 2.0, 0.0, -1.0, 0.0), ([0, 0, 2, 1, 2], 2.0, 0.0, -1.0, 0.0),
    ([1, 0, 0, 2, 1], -1.0, 0.0, 0.0, 0.0), ([1, 0, 2, 2, 1], -1.0, 0.0, 1.0, 0.0),
    ([1, 1, 0, -2, 1], -1.0, 0.0, 0.0, 0.0), ([0, 1, 0, 2, 0], -1.0, 0.0, 0.0, 0.0),
    ([0, 1, 2, -2, 0], -1.0, 0.0, 0.0, 0.0), ([0, 1, -2, 2, 0], -1.0, 0.0, 0.0, 0.0),
    ([1, 0, -2, 2, 0], -1.0, 0.0, 0.0, 0.0), ([1, 0, -2, -2, 0], -1.0, 0.0, 0.0, 0.0),
    ([1, 0, 2, -2, 0], -1.0, 0.0, 0.0, 0.0), ([1, 0, 0, -4, 0], -1.0, 0.0, 0.0, 0.0),
    ([2, 0, 0, -4, 0], -1.0, 0.0, 0.0, 0.0), ([0, 0, 2, 4, 2], -1.0, 0.0, 0.0, 0.0),
    ([0, 0, 2, -1, 2], -1.0, 0.0, 0.0, 0.0), ([-2, 0, 2, 4, 2], -1.0, 0.0, 1.0, 0.0),
    ([2, 0, 2, 2, 2], -1.0, 0.0, 0.0, 0.0), ([0, -1, 2, 0, 1], -1.0, 0.0, 0.0, 0.0),
    ([0, 0, -2, 0, 1], -1.0, 0.0, 0.0, 0.0), ([0, 0, 4, -2, 2], 1.0, 0.0, 0.0, 0.0),
    ([0, 1, 0, 0, 2], 1.0, 0.0, 0.0, 0.0), ([1, 1, 2, -2, 2], 1.0, 0.0, -1.0, 0.0),
    ([3, 0, 2, -2, 2], 1.0, 0.0, 0.0, 0.0), ([-2, 0, 2, 2, 2], 1.0, 0.0, -1.0, 0.0),
    ([-1, 0, 0, 0, 2], 1.0, 0.0, -1.0, 0.0), ([0, 0, -2, 2, 1], 1.0, 0.0, 0.0, 0.0),
    ([0, 1, 2, 0, 1], 1.0, 0.0, 0.0, 0.0), ([-1, 0, 4, 0, 2], 1.0, 0.0, 0.0, 0.0),
    ([2, 1, 0, -2, 0], 1.0, 0.0, 0.0, 0.0), ([2, 0, 0, 2, 0], 1.0, 0.0, 0.0, 0.0),
    ([2, 0, 2, -2, 1], 1.0, 0.0, -1.0, 0.0), ([2, 0, -2, 0, 1], 1.0, 0.0, 0.0, 0.0),
    ([1, -1, 0, -2, 0], 1.0, 0.0, 0.0, 0.0), ([-1, 0, 0, 1, 1], 1.0, 0.0, 0.0, 0.0),
    ([-1, -1, 0, 2, 1], 1.0, 0.0, 0.0, 0.0), ([0, 1, 0, 1, 0], 1.0, 0.0, 0.0, 0.0),
];

/// The angles of the IAU-76/FK5 reduction at `t` Julian centuries of TT since J2000.0, radians.
#[derive(Debug, Clone, Copy)]
pub struct Angles {
    /// Mean obliquity of the ecliptic (IAU 1976).
    pub mean_obliquity: f64,
    /// Nutation in longitude and in obliquity (IAU 1980, with the pole offsets added).
    pub delta_psi: f64,
    pub delta_eps: f64,
    /// Equation of the equinoxes (IAU 1982, with the 1994 terms after 1997-02-27).
    pub equation_of_equinoxes: f64,
}

impl Angles {
    pub fn at(t: f64, offsets: PoleOffsets) -> Angles {
        // Vallado (2013) eq. 3-68, in arcseconds.
        let mean_obliquity = (84_381.448 - 46.8150 * t - 0.00059 * t * t + 0.001813 * t * t * t) * ARCSEC;
        // Delaunay arguments (Vallado 2013 eq. 3-82, with its errata), degrees; r = 360.
        let polynomial = |c0: f64, c1: f64, c2: f64, c3: f64| ((c0 + c1 * t + c2 * t * t + c3 * t * t * t) % 360.0) * DEGREE;
        let arguments = [
            polynomial(134.962_981_39, 1325.0 * 360.0 + 198.867_398_1, 0.008_697_2, 1.78e-5),
            polynomial(357.527_723_33, 99.0 * 360.0 + 359.050_340_0, -0.000_160_3, -3.3e-6),
            polynomial(93.271_910_28, 1342.0 * 360.0 + 82.017_538_1, -0.003_682_5, 3.1e-6),
            polynomial(297.850_363_06, 1236.0 * 360.0 + 307.111_480_0, -0.001_914_2, 5.3e-6),
            polynomial(125.044_522_22, -(5.0 * 360.0 + 134.136_260_8), 0.002_070_8, 2.2e-6),
        ];
        let (mut psi, mut eps) = (0.0, 0.0);
        for (multipliers, a, b, c, d) in IAU_1980_NUTATION {
            let argument: f64 = multipliers.iter().zip(arguments).map(|(m, x)| f64::from(*m) * x).sum();
            psi += (a + b * t) * argument.sin();
            eps += (c + d * t) * argument.cos();
        }
        let delta_psi = psi * 1e-4 * ARCSEC + offsets.d_psi;
        let delta_eps = eps * 1e-4 * ARCSEC + offsets.d_eps;
        let moon_node = arguments[4];
        // The 1994 terms (IERS Conventions 1996) apply from 1997-02-27 (JD 2450449.5), t = -0.0284052...
        let since_1997_02_27 = t >= (2_450_449.5 - 2_451_545.0) / 36_525.0;
        let kinematic = if since_1997_02_27 { (0.002_64 * moon_node.sin() + 0.000_063 * (2.0 * moon_node).sin()) * ARCSEC } else { 0.0 };
        let equation_of_equinoxes = delta_psi * mean_obliquity.cos() + kinematic;
        Angles { mean_obliquity, delta_psi, delta_eps, equation_of_equinoxes }
    }
}

/// TEME -> true of date: the rotation by the equation of the equinoxes about the pole.
pub fn teme_to_tod(angles: &Angles) -> Matrix {
    rot3(-angles.equation_of_equinoxes)
}

/// True of date -> mean of date: N = ROT1(-mean obliquity) ROT3(dPsi) ROT1(true obliquity) (Vallado eq. 3-86).
pub fn tod_to_mod(angles: &Angles) -> Matrix {
    let true_obliquity = angles.mean_obliquity + angles.delta_eps;
    multiply(&multiply(&rot1(-angles.mean_obliquity), &rot3(angles.delta_psi)), &rot1(true_obliquity))
}

/// Mean of date -> EME2000: P = ROT3(zeta) ROT2(-theta) ROT3(z), IAU 1976 precession (Vallado eq. 3-88, 3-89).
pub fn mod_to_eme2000(t: f64) -> Matrix {
    let zeta = (2306.2181 * t + 0.30188 * t * t + 0.017998 * t * t * t) * ARCSEC;
    let theta = (2004.3109 * t - 0.42665 * t * t - 0.041833 * t * t * t) * ARCSEC;
    let z = (2306.2181 * t + 1.09468 * t * t + 0.018203 * t * t * t) * ARCSEC;
    multiply(&multiply(&rot3(zeta), &rot2(-theta)), &rot3(z))
}

/// EME2000 -> GCRF: the transpose of the frame bias B = R1(-eta0) R2(xi0) R3(d_alpha0), which takes GCRS to the
/// mean J2000 frame (IERS Conventions 2003, section 5.4.4: xi0 = -16.6170 mas, eta0 = -6.8192 mas,
/// d_alpha0 = -14.6 mas).
pub fn eme2000_to_gcrf() -> Matrix {
    let xi0 = -0.016_617 * ARCSEC;
    let eta0 = -0.006_819_2 * ARCSEC;
    let d_alpha0 = -0.0146 * ARCSEC;
    transpose(&multiply(&multiply(&rot1(-eta0), &rot2(xi0)), &rot3(d_alpha0)))
}

/// TEME -> EME2000 at `t` Julian centuries of TT since J2000.0.
pub fn teme_to_eme2000(t: f64, offsets: PoleOffsets) -> Matrix {
    let angles = Angles::at(t, offsets);
    multiply(&multiply(&mod_to_eme2000(t), &tod_to_mod(&angles)), &teme_to_tod(&angles))
}

/// The rotation taking states in `from` to states in `to` at `utc_ms` (TCA), without pole offsets.
pub fn rotation(from: Frame, to: Frame, utc_ms: i64) -> Matrix {
    let to_eme2000 = match from {
        Frame::Teme => teme_to_eme2000(tt_centuries_since_j2000(utc_ms), PoleOffsets::default()),
        Frame::Eme2000 => IDENTITY,
        Frame::Gcrf => transpose(&eme2000_to_gcrf()),
    };
    match to {
        Frame::Eme2000 => to_eme2000,
        Frame::Gcrf => multiply(&eme2000_to_gcrf(), &to_eme2000),
        Frame::Teme => multiply(&transpose(&teme_to_eme2000(tt_centuries_since_j2000(utc_ms), PoleOffsets::default())), &to_eme2000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leap_seconds_follow_the_table() {
        let at = |y, m, d| days_from_civil(y, m, d) * 86_400_000;
        assert_eq!(tai_minus_utc_s(at(1971, 6, 1)), 10.0);
        assert_eq!(tai_minus_utc_s(at(2004, 4, 6)), 32.0, "Vallado's example: dAT = 32 s");
        assert_eq!(tai_minus_utc_s(at(2016, 12, 31) + 86_399_999), 36.0);
        assert_eq!(tai_minus_utc_s(at(2017, 1, 1)), 37.0, "the last leap second, 2017-01-01");
        assert_eq!(tai_minus_utc_s(at(2030, 1, 1)), 37.0);
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1) * 86_400_000 + 43_200_000, J2000_UTC_UNIX_MS);
    }

    #[test]
    fn rotations_are_orthonormal_and_invert() {
        let m = rotation(Frame::Teme, Frame::Gcrf, 1_767_225_631_417);
        let product = multiply(&m, &transpose(&m));
        for (i, row) in product.iter().enumerate() {
            for (j, value) in row.iter().enumerate() {
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((value - expected).abs() < 1e-15, "M M^T [{i}][{j}] = {value}");
            }
        }
        let back = multiply(&rotation(Frame::Gcrf, Frame::Teme, 1_767_225_631_417), &m);
        for (i, row) in back.iter().enumerate() {
            for (j, value) in row.iter().enumerate() {
                assert!((value - if i == j { 1.0 } else { 0.0 }).abs() < 1e-15);
            }
        }
    }

    #[test]
    fn the_frame_bias_is_about_23_mas() {
        let b = eme2000_to_gcrf();
        // Off-diagonal terms are the small angles: d_alpha0 (14.6 mas) and xi0, eta0.
        assert!((b[0][1].abs() / ARCSEC - 0.0146).abs() < 1e-6, "{}", b[0][1] / ARCSEC);
        let angle = ((b[0][1].powi(2) + b[0][2].powi(2) + b[1][2].powi(2)).sqrt()) / ARCSEC;
        assert!((0.022..0.024).contains(&angle), "bias {angle}\"");
    }
}
