//! Two-body (Kepler) propagation of a state vector, forwards or backwards, for any conic.
//!
//! Universal-variable formulation (Vallado, *Fundamentals of Astrodynamics*,
//! algorithm 8) with a safeguarded Newton iteration: the universal Kepler
//! equation is monotonic in the universal anomaly `chi`, so a bracket plus
//! bisection fallback makes it converge for elliptic, parabolic and hyperbolic
//! orbits alike, whatever the time step. [`SeriesStep`] is the cheap
//! alternative for many short steps of one length: the Lagrange f and g series,
//! with a proven bound on its error that tells when it may be used.

/// Earth's gravitational parameter, km^3/s^2.
pub const MU_KM3_S2: f64 = 398_600.441_8;

/// Newton iterations [`Orbit::solve`] tries from its guess before it falls
/// back to the bracketed solver.
const NEWTON_FIRST_ITERATIONS: usize = 12;

pub type Vec3 = [f64; 3];

pub fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

pub fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// Gravitational acceleration at `r`, km/s^2.
pub fn acceleration(r: Vec3) -> Vec3 {
    let d = norm(r);
    let k = -MU_KM3_S2 / (d * d * d);
    [k * r[0], k * r[1], k * r[2]]
}

/// Taylor coefficients of c2 and c3 in `-psi`: 1/(2n+2)! and 1/(2n+3)!, n = 0..=6.
/// Constants, so the series costs multiplications only (it runs for nearly every
/// propagation over a screening window).
const C2_SERIES: [f64; 7] =
    [1.0 / 2.0, 1.0 / 24.0, 1.0 / 720.0, 1.0 / 40_320.0, 1.0 / 3_628_800.0, 1.0 / 479_001_600.0, 1.0 / 87_178_291_200.0];
const C3_SERIES: [f64; 7] =
    [1.0 / 6.0, 1.0 / 120.0, 1.0 / 5_040.0, 1.0 / 362_880.0, 1.0 / 39_916_800.0, 1.0 / 6_227_020_800.0, 1.0 / 1_307_674_368_000.0];

/// Stumpff functions c2(psi) and c3(psi); series near zero, where the closed
/// forms lose precision to cancellation.
fn stumpff(psi: f64) -> (f64, f64) {
    if psi.abs() < 0.1 {
        // Seven terms: the first left out is below 1e-17 of the sum. Horner, highest order first.
        let x = -psi;
        let (mut c2, mut c3) = (0.0, 0.0);
        for n in (0..7).rev() {
            c2 = c2 * x + C2_SERIES[n];
            c3 = c3 * x + C3_SERIES[n];
        }
        (c2, c3)
    } else if psi > 0.0 {
        let s = psi.sqrt();
        ((1.0 - s.cos()) / psi, (s - s.sin()) / (s * psi))
    } else {
        let s = (-psi).sqrt();
        ((1.0 - s.cosh()) / psi, (s.sinh() - s) / (s * -psi))
    }
}

/// An orbit through one state, ready to be propagated to many times.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Orbit {
    r0: Vec3,
    v0: Vec3,
    r0_norm: f64,
    /// r0 . v0 / sqrt(mu)
    sigma0: f64,
    /// 2/r0 - v0^2/mu: the reciprocal of the semi-major axis (negative for hyperbolas).
    alpha: f64,
}

/// How near and how far an orbit goes from Earth's centre, and how fast it goes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// The least radius, km; the same as [`Orbit::periapsis_km`].
    pub periapsis_km: f64,
    /// The greatest radius, km; infinite for an orbit that is not bound (parabola, hyperbola).
    pub apoapsis_km: f64,
    /// The speed at periapsis, km/s: the greatest on the orbit (angular momentum over the
    /// periapsis radius, where the velocity is square to the radius).
    pub periapsis_speed_km_s: f64,
}

/// The universal anomaly solved for, with the radius and Stumpff values there.
struct Solved {
    chi: f64,
    r: f64,
    c2: f64,
    c3: f64,
}

/// Position and velocity at some time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct State {
    pub r: Vec3,
    pub v: Vec3,
}

impl Orbit {
    pub fn new(r0: Vec3, v0: Vec3) -> Orbit {
        let r0_norm = norm(r0);
        Orbit { r0, v0, r0_norm, sigma0: dot(r0, v0) / MU_KM3_S2.sqrt(), alpha: 2.0 / r0_norm - dot(v0, v0) / MU_KM3_S2 }
    }

    /// The least distance from Earth's centre on this orbit (its periapsis), km.
    /// Bounds the acceleration anywhere on it: `mu / r_p^2`.
    pub fn periapsis_km(&self) -> f64 {
        let (h, e) = self.momentum_and_eccentricity();
        (h * h / (MU_KM3_S2 * (1.0 + e))).min(self.r0_norm)
    }

    /// The orbit's extremes: periapsis, apoapsis and the speed at periapsis.
    pub fn shape(&self) -> Shape {
        let (h, e) = self.momentum_and_eccentricity();
        let periapsis_km = (h * h / (MU_KM3_S2 * (1.0 + e))).min(self.r0_norm);
        let apoapsis_km = if self.alpha > 0.0 && e < 1.0 { (h * h / (MU_KM3_S2 * (1.0 - e))).max(self.r0_norm) } else { f64::INFINITY };
        Shape { periapsis_km, apoapsis_km, periapsis_speed_km_s: h / periapsis_km }
    }

    /// The length of the specific angular momentum and the eccentricity.
    fn momentum_and_eccentricity(&self) -> (f64, f64) {
        let h = norm(cross(self.r0, self.v0));
        let mu = MU_KM3_S2;
        let v2 = dot(self.v0, self.v0);
        let rv = dot(self.r0, self.v0);
        let e_vec = [
            ((v2 - mu / self.r0_norm) * self.r0[0] - rv * self.v0[0]) / mu,
            ((v2 - mu / self.r0_norm) * self.r0[1] - rv * self.v0[1]) / mu,
            ((v2 - mu / self.r0_norm) * self.r0[2] - rv * self.v0[2]) / mu,
        ];
        (h, norm(e_vec))
    }

    /// Residual of the universal Kepler equation at `chi` (decreasing in `chi`),
    /// with the radius there (its derivative, negated).
    fn kepler(&self, chi: f64, sqrt_mu_dt: f64) -> (f64, f64, f64, f64) {
        let chi2 = chi * chi;
        let psi = chi2 * self.alpha;
        let (c2, c3) = stumpff(psi);
        let r = chi2 * c2 + self.sigma0 * chi * (1.0 - psi * c3) + self.r0_norm * (1.0 - psi * c2);
        let t = chi2 * chi * c3 + self.sigma0 * chi2 * c2 + self.r0_norm * chi * (1.0 - psi * c3);
        (sqrt_mu_dt - t, r, c2, c3)
    }

    /// Solves for the universal anomaly after `dt` (not zero) seconds, starting from `guess`.
    ///
    /// Newton's method from the guess first: the residual is monotonic and its
    /// derivative (the radius) never vanishes, so from a close guess (the
    /// screening's steps through a window give one) two or three iterations
    /// converge; the last evaluation is handed back, so the state costs no
    /// further one. The evaluations narrow a bracket on the root's side; a step
    /// that would leave the bracket, a residual that is not finite, or slow
    /// convergence hands over to [`Orbit::solve_chi_bracketed`], which
    /// converges from any guess.
    fn solve(&self, dt: f64, guess: f64) -> Solved {
        let sqrt_mu_dt = MU_KM3_S2.sqrt() * dt;
        // chi has the sign of dt.
        let (mut lo, mut hi) = if dt > 0.0 { (0.0, f64::INFINITY) } else { (f64::NEG_INFINITY, 0.0) };
        let mut chi = guess;
        if chi > lo && chi < hi {
            for _ in 0..NEWTON_FIRST_ITERATIONS {
                let (f, r, c2, c3) = self.kepler(chi, sqrt_mu_dt);
                if !(f.is_finite() && r > 0.0) {
                    break;
                }
                let step = f / r;
                // Converged: Newton's error is now about the square of this step, and
                // `chi` is off by less than the step, 1e-13 of it (well under a micrometre).
                if step.abs() <= 1e-13 * (1.0 + chi.abs()) {
                    return Solved { chi, r, c2, c3 };
                }
                if f > 0.0 {
                    lo = chi;
                } else {
                    hi = chi;
                }
                let next = chi + step;
                if !(next > lo && next < hi) {
                    break;
                }
                chi = next;
            }
        }
        let chi = self.solve_chi_bracketed(sqrt_mu_dt, dt.signum(), guess);
        let (_, r, c2, c3) = self.kepler(chi, sqrt_mu_dt);
        Solved { chi, r, c2, c3 }
    }

    /// Solves the universal Kepler equation inside a bracket grown from zero,
    /// with Newton steps that fall back to bisection: converges from any guess.
    fn solve_chi_bracketed(&self, sqrt_mu_dt: f64, sign: f64, guess: f64) -> f64 {
        // Grow a bracket [lo, hi] around the root.
        let scale = (sqrt_mu_dt / self.r0_norm).abs().max(1e-12);
        let (mut lo, mut hi) = if sign > 0.0 { (0.0, scale) } else { (-scale, 0.0) };
        let outer = |o: &Orbit, x: f64| o.kepler(x, sqrt_mu_dt).0;
        for _ in 0..200 {
            if sign > 0.0 && outer(self, hi) > 0.0 {
                lo = hi;
                hi *= 2.0;
            } else if sign < 0.0 && outer(self, lo) < 0.0 {
                hi = lo;
                lo *= 2.0;
            } else {
                break;
            }
        }
        let mut chi = if guess > lo && guess < hi { guess } else { 0.5 * (lo + hi) };
        for _ in 0..100 {
            let (f, r, _, _) = self.kepler(chi, sqrt_mu_dt);
            // f is decreasing in chi: shrink the bracket on its sign.
            if f > 0.0 {
                lo = chi;
            } else {
                hi = chi;
            }
            let newton = chi + f / r;
            let next = if newton > lo && newton < hi { newton } else { 0.5 * (lo + hi) };
            if (next - chi).abs() <= 1e-13 * (1.0 + chi.abs()) || hi - lo <= 1e-15 * (1.0 + chi.abs()) {
                return next;
            }
            chi = next;
        }
        chi
    }

    /// A guess for `chi` at `dt + step` seconds, from the solution `chi` at `dt`
    /// and the state `at` there: the Taylor expansion of `chi(t)` to second order
    /// (`dchi/dt = sqrt(mu) / r`), off by `O(step^3)`, so [`Orbit::solve`]
    /// needs two or three Newton steps from it.
    pub fn next_guess(chi: f64, at: &State, step: f64) -> f64 {
        let r = norm(at.r);
        let radial_speed = dot(at.r, at.v) / r;
        let rate = MU_KM3_S2.sqrt() / r;
        chi + rate * step - 0.5 * rate * radial_speed / r * step * step
    }

    /// The state `dt` seconds after (or before, if negative) the orbit's epoch.
    pub fn at(&self, dt: f64) -> State {
        self.at_with_guess(dt, self.guess(dt)).0
    }

    /// A first guess for `chi` after `dt` seconds knowing nothing else: the
    /// mean motion's (exact for a circle), zero for an unbound orbit.
    pub fn guess(&self, dt: f64) -> f64 {
        MU_KM3_S2.sqrt() * dt * self.alpha.max(0.0)
    }

    /// As [`Orbit::at`], with a starting guess for `chi` (e.g. the last one, when
    /// stepping through nearby times); returns the solved `chi` too.
    pub fn at_with_guess(&self, dt: f64, guess: f64) -> (State, f64) {
        if dt == 0.0 {
            return (State { r: self.r0, v: self.v0 }, 0.0);
        }
        let Solved { chi, r, c2, c3 } = self.solve(dt, guess);
        let sqrt_mu = MU_KM3_S2.sqrt();
        let chi2 = chi * chi;
        let psi = chi2 * self.alpha;
        let f = 1.0 - chi2 / self.r0_norm * c2;
        let g = dt - chi2 * chi / sqrt_mu * c3;
        let g_dot = 1.0 - chi2 / r * c2;
        let f_dot = sqrt_mu / (r * self.r0_norm) * chi * (psi * c3 - 1.0);
        let (r0, v0) = (self.r0, self.v0);
        let pos = [f * r0[0] + g * v0[0], f * r0[1] + g * v0[1], f * r0[2] + g * v0[2]];
        let vel = [f_dot * r0[0] + g_dot * v0[0], f_dot * r0[1] + g_dot * v0[1], f_dot * r0[2] + g_dot * v0[2]];
        (State { r: pos, v: vel }, chi)
    }
}

/// Steps of one fixed length `dt` by the Lagrange f and g series: the state
/// after the step is `f r + g v`, velocity `f' r + g' v`, with `f` and `g` the
/// Taylor polynomials, to `dt^7`, of the two-body motion through the state.
/// No iteration and no branch: about a third of a Kepler solve, for the
/// screening's thousands of propagations per object and window.
///
/// Their coefficients follow from `r'' = -u r` (the classical f and g series,
/// derived here by machine to `dt^8`): with `u = mu / r^3`, `p = r.v / r^2` and
/// `q = v.v / r^2 - u`, the n-th derivative of the position is `F_n r + G_n v`,
/// where `F_{n+1} = F_n' - u G_n` and `G_{n+1} = F_n + G_n'`, the derivatives
/// taken through `u' = -3 u p`, `p' = q - 2 p^2`, `q' = -p (u + 2 q)`.
///
/// **Error.** Lagrange's remainder bounds the error of one step by
/// `dt^8 / 8! * max |r^(8)|` (position) and `dt^7 / 7! * max |r^(8)|` (velocity),
/// and `r^(8) = F_8 r + G_8 v`. Along the whole orbit `u <= s^2`, `|p| <= s` and
/// `|q| <= s^2`, with the orbit's rate `s = max(sqrt(mu / r_p^3), v_p / r_p)`
/// (`r_p` and `v_p` the radius and speed at periapsis, the least radius and
/// the greatest speed); every term of `F_8` has the time dimension of `s^8`,
/// every term of `G_8` that of `s^7`, so `|F_8| <= 415135 s^8` and
/// `|G_8| <= 144270 s^7` (the sums of their coefficients' magnitudes), and
/// `|r^(8)| <= 559405 s^8 r_max` (as `v_p <= s r_p`), `r_max` bounding the
/// radius over the steps. With `sigma = s dt`, one step errs by at most
/// `13.9 sigma^8 r_max` in position and `111 sigma^8 r_max / dt` in velocity.
/// An error made at one step grows as the motion carries it: over the next `m`
/// steps a position error by less than `g = cosh(sqrt(2) s m dt)` (the gravity
/// gradient stretches by at most `2 u`), a velocity error by less than
/// `m dt` times that. Over [`SeriesStep::MAX_CHAIN`] = 12 steps the chain's
/// error is therefore below `(12 * 13.9 + 66 * 111) g sigma^8 r_max <
/// 7500 g sigma^8 r_max`, with `g <= 1 + 0.6 x^2` for `x = 12 sqrt(2) sigma <= 1`:
/// what [`SeriesStep::chain_error_km`] returns (rounding aside, a few units in
/// the last place of `r_max` per step).
pub struct SeriesStep {
    /// `dt^n / n!` for n = 0..=7.
    powers: [f64; 8],
    dt: f64,
}

impl SeriesStep {
    /// The most steps [`SeriesStep::chain_error_km`] accounts for in one chain:
    /// a chain must restart from a solved state after this many.
    pub const MAX_CHAIN: usize = 12;

    pub fn new(dt: f64) -> SeriesStep {
        let mut powers = [1.0; 8];
        for n in 1..8 {
            powers[n] = powers[n - 1] * dt / n as f64;
        }
        SeriesStep { powers, dt }
    }

    /// Bound on the position error, km, after up to [`SeriesStep::MAX_CHAIN`]
    /// steps from an exact state, for an orbit with radius at most `r_max_km`
    /// over the chain, or infinity where the bound's premises fail (see the type's doc).
    pub fn chain_error_km(&self, shape: &Shape, r_max_km: f64) -> f64 {
        let r_p = shape.periapsis_km;
        let rate = (MU_KM3_S2 / (r_p * r_p * r_p)).sqrt().max(shape.periapsis_speed_km_s / r_p);
        let sigma = rate * self.dt.abs();
        let x = 12.0 * std::f64::consts::SQRT_2 * sigma;
        // Written so that NaN (a degenerate orbit) fails the test.
        if x <= 1.0 && r_max_km.is_finite() { 7500.0 * (1.0 + 0.6 * x * x) * sigma.powi(8) * r_max_km } else { f64::INFINITY }
    }

    /// The states one step after `a` and after `b`: the same as two calls of
    /// [`SeriesStep::advance`], but the two chains of operations side by side, where the
    /// processor overlaps them.
    pub fn advance_two(&self, a: &State, b: &State) -> (State, State) {
        (self.advance(a), self.advance(b))
    }

    /// The state one step after `at`.
    #[inline(always)]
    pub fn advance(&self, at: &State) -> State {
        let (r, v) = (at.r, at.v);
        let r2 = dot(r, r);
        let inv_r2 = 1.0 / r2;
        let u = MU_KM3_S2 * inv_r2 / r2.sqrt();
        let p = dot(r, v) * inv_r2;
        let q = dot(v, v) * inv_r2 - u;
        let (p2, up, qq, uq, uu) = (p * p, u * p, q * q, q * u, u * u);
        let f2 = -u;
        let f3 = 3.0 * up;
        let f4 = u * (3.0 * q + u - 15.0 * p2);
        let f5 = 15.0 * up * (7.0 * p2 - 3.0 * q - u);
        let f6 = -u * (945.0 * p2 * p2 - 630.0 * p2 * q - 210.0 * p2 * u + 45.0 * qq + 24.0 * uq + uu);
        let f7 = 63.0 * up * (165.0 * p2 * p2 - 150.0 * p2 * q - 50.0 * p2 * u + 25.0 * qq + 14.0 * uq + uu);
        let g3 = -u;
        let g4 = 6.0 * up;
        let g5 = -u * (45.0 * p2 - 9.0 * q - u);
        let g6 = 30.0 * up * (14.0 * p2 - 6.0 * q - u);
        let g7 = -u * (4725.0 * p2 * p2 - 3150.0 * p2 * q - 630.0 * p2 * u + 225.0 * qq + 54.0 * uq + uu);
        let k = &self.powers;
        // Smallest terms first, so they are not lost against the leading ones.
        let f = 1.0 + (f7 * k[7] + f6 * k[6] + f5 * k[5] + f4 * k[4] + f3 * k[3] + f2 * k[2]);
        let g = k[1] + (g7 * k[7] + g6 * k[6] + g5 * k[5] + g4 * k[4] + g3 * k[3]);
        // d/dt of dt^n / n! is dt^(n-1) / (n-1)!.
        let f_dot = f7 * k[6] + f6 * k[5] + f5 * k[4] + f4 * k[3] + f3 * k[2] + f2 * k[1];
        let g_dot = 1.0 + (g7 * k[6] + g6 * k[5] + g5 * k[4] + g4 * k[3] + g3 * k[2]);
        State {
            r: [f * r[0] + g * v[0], f * r[1] + g * v[1], f * r[2] + g * v[2]],
            v: [f_dot * r[0] + g_dot * v[0], f_dot * r[1] + g_dot * v[1], f_dot * r[2] + g_dot * v[2]],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn energy(s: State) -> f64 {
        dot(s.v, s.v) / 2.0 - MU_KM3_S2 / norm(s.r)
    }

    fn close(a: Vec3, b: Vec3, tol: f64) -> bool {
        norm(sub(a, b)) <= tol
    }

    #[test]
    fn a_circular_orbit_matches_the_analytic_circle() {
        let r = 7000.0;
        let v = (MU_KM3_S2 / r).sqrt();
        let n = v / r;
        let orbit = Orbit::new([r, 0.0, 0.0], [0.0, v, 0.0]);
        for dt in [-3000.0, -60.0, 0.001, 37.5, 60.0, 5000.0] {
            let s = orbit.at(dt);
            let expected = [r * (n * dt).cos(), r * (n * dt).sin(), 0.0];
            assert!(close(s.r, expected, 1e-6), "dt {dt}: {:?} vs {expected:?}", s.r);
        }
        let period = 2.0 * std::f64::consts::PI / n;
        assert!(close(orbit.at(period).r, [r, 0.0, 0.0], 1e-6));
    }

    #[test]
    fn matches_a_numerical_integration_of_an_eccentric_orbit() {
        // Molniya-like: perigee 6900 km, fast. RK4 with tiny steps as an independent check.
        let r0 = [6900.0, 0.0, 0.0];
        let v0 = [0.0, 9.8, 2.0];
        let orbit = Orbit::new(r0, v0);
        let (mut r, mut v) = (r0, v0);
        let h = 0.01;
        for _ in 0..6000 {
            let deriv = |r: Vec3, v: Vec3| (v, acceleration(r));
            let (k1r, k1v) = deriv(r, v);
            let (k2r, k2v) = deriv(add(r, k1r, h / 2.0), add(v, k1v, h / 2.0));
            let (k3r, k3v) = deriv(add(r, k2r, h / 2.0), add(v, k2v, h / 2.0));
            let (k4r, k4v) = deriv(add(r, k3r, h), add(v, k3v, h));
            for i in 0..3 {
                r[i] += h / 6.0 * (k1r[i] + 2.0 * k2r[i] + 2.0 * k3r[i] + k4r[i]);
                v[i] += h / 6.0 * (k1v[i] + 2.0 * k2v[i] + 2.0 * k3v[i] + k4v[i]);
            }
        }
        let s = orbit.at(60.0);
        assert!(close(s.r, r, 1e-6), "{:?} vs {r:?}", s.r);
        assert!(close(s.v, v, 1e-9));
    }

    fn add(a: Vec3, b: Vec3, k: f64) -> Vec3 {
        [a[0] + k * b[0], a[1] + k * b[1], a[2] + k * b[2]]
    }

    #[test]
    fn periapsis_of_known_orbits() {
        let r = 7000.0;
        let circular = Orbit::new([r, 0.0, 0.0], [0.0, (MU_KM3_S2 / r).sqrt(), 0.0]);
        assert!((circular.periapsis_km() - r).abs() < 1e-6);
        // At apoapsis of an ellipse with a = 10000, e = 0.3: r_a = 13000, r_p = 7000.
        let (a, e) = (10000.0, 0.3);
        let ra = a * (1.0 + e);
        let va = (MU_KM3_S2 * (2.0 / ra - 1.0 / a)).sqrt();
        let ellipse = Orbit::new([ra, 0.0, 0.0], [0.0, va, 0.0]);
        assert!((ellipse.periapsis_km() - a * (1.0 - e)).abs() < 1e-6);
    }

    #[test]
    fn shapes_of_known_orbits() {
        let r = 7000.0;
        let circle = Orbit::new([r, 0.0, 0.0], [0.0, (MU_KM3_S2 / r).sqrt(), 0.0]).shape();
        assert!((circle.periapsis_km - r).abs() < 1e-6 && (circle.apoapsis_km - r).abs() < 1e-6, "{circle:?}");
        // From periapsis of an ellipse with a = 10000, e = 0.3: r_p = 7000, r_a = 13000.
        let (a, e) = (10000.0f64, 0.3);
        let v_p = (MU_KM3_S2 * (2.0 / (a * (1.0 - e)) - 1.0 / a)).sqrt();
        let ellipse = Orbit::new([0.0, a * (1.0 - e), 0.0], [-v_p, 0.0, 0.0]).shape();
        assert!((ellipse.periapsis_km - 7000.0).abs() < 1e-6, "{ellipse:?}");
        assert!((ellipse.apoapsis_km - 13000.0).abs() < 1e-6, "{ellipse:?}");
        assert!((ellipse.periapsis_speed_km_s - v_p).abs() < 1e-9, "{ellipse:?}");
        // Seen elsewhere on the same ellipse, the shape is the same.
        let elsewhere = Orbit::new([0.0, a * (1.0 - e), 0.0], [-v_p, 0.0, 0.0]).at(2000.0);
        let again = Orbit::new(elsewhere.r, elsewhere.v).shape();
        assert!((again.apoapsis_km - 13000.0).abs() < 1e-6 && (again.periapsis_speed_km_s - v_p).abs() < 1e-9, "{again:?}");
        // Faster than escape: no apoapsis.
        let hyperbola = Orbit::new([r, 0.0, 0.0], [0.0, 1.5 * (2.0 * MU_KM3_S2 / r).sqrt(), 0.0]).shape();
        assert_eq!(hyperbola.apoapsis_km, f64::INFINITY);
        assert!((hyperbola.periapsis_km - r).abs() < 1e-6);
    }

    /// The Taylor coefficients of the motion through `(r0, v0)` to `t^7`, by the Taylor-series
    /// method: `r'' = -mu r / |r|^3` worked on power series (Jorba & Zou 2005), independent of
    /// the f and g recurrence.
    fn taylor_coefficients(r0: Vec3, v0: Vec3) -> [Vec3; 8] {
        let mut r = [[0.0; 3]; 8];
        (r[0], r[1]) = (r0, v0);
        let (mut rho, mut s) = ([0.0; 8], [0.0; 8]);
        for k in 0..6 {
            // rho = r . r, then s = rho^(-3/2), by the rule for powers of a series.
            rho[k] = (0..=k).map(|j| dot(r[j], r[k - j])).sum();
            s[k] = if k == 0 {
                rho[0].powf(-1.5)
            } else {
                (1..=k).map(|j| (-0.5 * j as f64 - k as f64) * rho[j] * s[k - j]).sum::<f64>() / (k as f64 * rho[0])
            };
            // r'' = -mu s r: coefficient k of the acceleration gives coefficient k + 2 of r.
            r[k + 2] = [0, 1, 2].map(|d| (0..=k).map(|j| s[j] * r[k - j][d]).sum::<f64>() * -MU_KM3_S2 / ((k + 1) * (k + 2)) as f64);
        }
        r
    }

    #[test]
    fn the_series_is_the_taylor_polynomial_of_the_motion() {
        // Steps long enough (a tenth of an orbit) that every coefficient counts far above rounding.
        for (r0, v0, dt) in [
            ([7000.0, 0.0, 0.0], [0.0, 7.546, 0.3], 600.0),
            ([6900.0, 100.0, -50.0], [-3.0, 9.3, 2.0], 300.0),
            ([9000.0, 0.0, 0.0], [4.0, 8.0, 1.0], 400.0),
            ([7000.0, 0.0, 0.0], [2.0, 12.0, 0.0], 300.0),
        ] {
            let c = taylor_coefficients(r0, v0);
            let step = SeriesStep::new(dt).advance(&State { r: r0, v: v0 });
            for d in 0..3 {
                let terms = c.iter().enumerate().map(|(n, c)| c[d] * dt.powi(n as i32));
                let (position, scale) = terms.fold((0.0, 0.0), |(sum, scale), t: f64| (sum + t, scale + t.abs()));
                assert!((step.r[d] - position).abs() <= 1e-13 * scale, "{r0:?} {v0:?} axis {d}: {} vs {position}", step.r[d]);
                let terms = c.iter().enumerate().skip(1).map(|(n, c)| n as f64 * c[d] * dt.powi(n as i32 - 1));
                let (velocity, scale) = terms.fold((0.0, 0.0), |(sum, scale), t: f64| (sum + t, scale + t.abs()));
                assert!((step.v[d] - velocity).abs() <= 1e-13 * scale, "{r0:?} {v0:?} axis {d}: {} vs {velocity}", step.v[d]);
            }
        }
    }

    #[test]
    fn series_steps_through_a_window_stay_within_a_micrometre_of_kepler() {
        // LEO, and Molniya-like orbits through perigee and climbing away from it: every term
        // of the series counts in one or the other.
        for (r0, v0) in [
            ([7000.0, 0.0, 0.0], [0.0, 7.546, 0.3]),
            ([6900.0, 0.0, 0.0], [0.0, 9.8, 2.0]),
            ([6900.0, 0.0, 0.0], [-3.0, 9.3, 2.0]),
            ([9000.0, 0.0, 0.0], [4.0, 8.0, 1.0]),
        ] {
            let orbit = Orbit::new(r0, v0);
            let series = SeriesStep::new(5.0);
            let mut state = State { r: r0, v: v0 };
            for k in 1..=SeriesStep::MAX_CHAIN {
                state = series.advance(&state);
                let exact = orbit.at(5.0 * k as f64);
                assert!(close(state.r, exact.r, 1e-9), "{r0:?} {v0:?} step {k}: {:?} vs {:?}", state.r, exact.r);
                assert!(close(state.v, exact.v, 1e-12), "{r0:?} {v0:?} step {k}: {:?} vs {:?}", state.v, exact.v);
            }
            let shape = orbit.shape();
            assert!(series.chain_error_km(&shape, shape.apoapsis_km) < 1e-7, "{r0:?} {v0:?}");
        }
    }

    #[test]
    fn the_stumpff_series_meets_the_closed_forms_at_its_edge() {
        for psi in [0.0999, -0.0999, 0.05, -0.05] {
            let (c2, c3) = stumpff(psi);
            let (closed2, closed3) = if psi > 0.0 {
                let s: f64 = psi.sqrt();
                ((1.0 - s.cos()) / psi, (s - s.sin()) / (s * psi))
            } else {
                let s: f64 = (-psi).sqrt();
                ((1.0 - s.cosh()) / psi, (s.sinh() - s) / (s * -psi))
            };
            // The closed forms lose digits to cancellation here; agreement to 1e-13 is all they hold.
            assert!((c2 - closed2).abs() < 1e-13, "c2({psi}): {c2} vs {closed2}");
            assert!((c3 - closed3).abs() < 1e-13, "c3({psi}): {c3} vs {closed3}");
        }
        assert_eq!(stumpff(0.0), (0.5, 1.0 / 6.0));
    }

    #[test]
    fn stepping_guesses_are_close_to_the_solution() {
        // LEO and an eccentric orbit near perigee, stepped 5 s at a time as the screening does.
        for (r0, v0) in [([7000.0, 0.0, 0.0], [0.0, 7.546, 0.0]), ([6900.0, 0.0, 0.0], [0.3, 9.8, 2.0])] {
            let orbit = Orbit::new(r0, v0);
            let (mut state, mut chi) = orbit.at_with_guess(-40.0, orbit.guess(-40.0));
            for j in 1..=24 {
                let dt = -40.0 + 5.0 * f64::from(j);
                let guess = Orbit::next_guess(chi, &state, 5.0);
                (state, chi) = orbit.at_with_guess(dt, guess);
                let solved = if dt == 0.0 { 0.0 } else { orbit.solve_chi_bracketed(MU_KM3_S2.sqrt() * dt, dt.signum(), 0.0) };
                assert!((chi - solved).abs() <= 1e-12 * (1.0 + solved.abs()), "dt {dt}: {chi} vs {solved}");
                assert!((guess - solved).abs() <= 1e-5 * (1.0 + solved.abs()), "dt {dt}: guess {guess} vs {solved}");
            }
        }
    }

    proptest! {
        /// Newton's method from any guess, however poor, ends where the bracketed
        /// solver does (it hands over to it when it has to), for LEO to escape trajectories.
        #[test]
        fn newton_from_any_guess_agrees_with_the_bracketed_solver(
            radius in 6400.0f64..60000.0,
            speed_factor in 0.5f64..1.9,
            flight_path in -0.5f64..0.5,
            dt in -7200.0f64..7200.0,
            guess_factor in -3.0f64..3.0,
        ) {
            prop_assume!(dt != 0.0);
            let speed = (MU_KM3_S2 / radius).sqrt() * speed_factor;
            let orbit = Orbit::new([radius, 0.0, 0.0], [speed * flight_path.sin(), speed * flight_path.cos(), 0.0]);
            let bracketed = orbit.solve_chi_bracketed(MU_KM3_S2.sqrt() * dt, dt.signum(), 0.0);
            for guess in [orbit.guess(dt), bracketed * guess_factor, bracketed * (1.0 + 1e-3 * guess_factor), f64::NAN, f64::INFINITY] {
                let chi = orbit.solve(dt, guess).chi;
                prop_assert!((chi - bracketed).abs() <= 1e-11 * (1.0 + bracketed.abs()), "guess {guess}: {chi} vs {bracketed}");
            }
        }

        /// A chain of series steps stays within its proven bound of Kepler's solution, wherever
        /// the bound is finite: LEO to escape, nearly radial dives, steps of up to 10 s.
        #[test]
        fn series_steps_stay_within_their_bound(
            radius in 6400.0f64..60000.0,
            speed_factor in 0.5f64..1.9,
            flight_path in prop_oneof![4 => -0.6f64..0.6, 1 => -1.5f64..1.5],
            inclination in 0.0f64..3.1,
            dt in 0.5f64..10.0,
            steps in 1usize..=SeriesStep::MAX_CHAIN,
        ) {
            let speed = (MU_KM3_S2 / radius).sqrt() * speed_factor;
            let r0 = [radius, 0.0, 0.0];
            let (radial, along) = (speed * flight_path.sin(), speed * flight_path.cos());
            let v0 = [radial, along * inclination.cos(), along * inclination.sin()];
            let orbit = Orbit::new(r0, v0);
            let shape = orbit.shape();
            let r_max = shape.apoapsis_km.min(radius + shape.periapsis_speed_km_s * dt * steps as f64);
            let series = SeriesStep::new(dt);
            let bound = series.chain_error_km(&shape, r_max);
            prop_assume!(bound.is_finite());
            // Kepler's solution and the series' rounding err by a few units in the 15th digit.
            let rounding = 1e-13 * r_max;
            // One step, against the bound for one: 13.9 sigma^8 r_max.
            let r_p = shape.periapsis_km;
            let sigma = (MU_KM3_S2 / (r_p * r_p * r_p)).sqrt().max(shape.periapsis_speed_km_s / r_p) * dt;
            let one = norm(sub(series.advance(&State { r: r0, v: v0 }).r, orbit.at(dt).r));
            prop_assert!(one <= 13.9 * sigma.powi(8) * r_max + rounding, "one step: {} km off, sigma {}", one, sigma);
            let mut state = State { r: r0, v: v0 };
            for k in 1..=steps {
                state = series.advance(&state);
                let off = norm(sub(state.r, orbit.at(dt * k as f64).r));
                prop_assert!(off <= bound + rounding, "step {}: {} km off, bound {}", k, off, bound);
            }
        }

        /// Energy and angular momentum are conserved, and propagating there and
        /// back returns to the start, for LEO to escape trajectories.
        #[test]
        fn conserves_and_round_trips(
            radius in 6400.0f64..60000.0,
            speed_factor in 0.5f64..1.9,
            flight_path in -0.5f64..0.5,
            inclination in 0.0f64..3.1,
            dt in -7200.0f64..7200.0,
        ) {
            let v_circ = (MU_KM3_S2 / radius).sqrt();
            let speed = v_circ * speed_factor;
            let r0 = [radius, 0.0, 0.0];
            let (radial, along) = (speed * flight_path.sin(), speed * flight_path.cos());
            let v0 = [radial, along * inclination.cos(), along * inclination.sin()];
            let orbit = Orbit::new(r0, v0);
            let s = orbit.at(dt);
            // Skip trajectories that pass through the centre (not physical here).
            prop_assume!(norm(s.r) > 100.0);
            let e0 = energy(State { r: r0, v: v0 });
            prop_assert!((energy(s) - e0).abs() <= 1e-9 * e0.abs().max(1.0), "energy {} vs {}", energy(s), e0);
            let h0 = cross(r0, v0);
            prop_assert!(close(cross(s.r, s.v), h0, 1e-8 * norm(h0)));
            let back = Orbit::new(s.r, s.v).at(-dt);
            prop_assert!(close(back.r, r0, 1e-6), "{:?} vs {r0:?}", back.r);
        }
    }
}
