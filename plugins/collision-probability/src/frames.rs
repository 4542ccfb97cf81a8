//! Frames: the RTN basis of a state, an RTN covariance turned inertial, and the small vector algebra they need.

use sda_records::Covariance6;

pub(crate) type Vec3 = [f64; 3];
pub(crate) type Mat3 = [[f64; 3]; 3];

pub(crate) fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn scale(a: Vec3, k: f64) -> Vec3 {
    [a[0] * k, a[1] * k, a[2] * k]
}

pub(crate) fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

pub(crate) fn norm(a: Vec3) -> f64 {
    dot(a, a).sqrt()
}

/// `a / |a|`; NaN components for a zero vector (callers that can meet one check first).
pub(crate) fn unit(a: Vec3) -> Vec3 {
    scale(a, 1.0 / norm(a))
}

/// `m * a`.
pub(crate) fn mat_vec(m: &Mat3, a: Vec3) -> Vec3 {
    [dot(m[0], a), dot(m[1], a), dot(m[2], a)]
}

/// The RTN basis of a state: rows R = r/|r|, T = N x R, N = (r x v)/|r x v|, in that order, so that the matrix maps
/// an inertial vector to its (radial, transverse, normal) components. Undefined (NaN) for a zero position or for
/// rectilinear motion (r parallel to v); the Pc functions reject the NaN covariance that follows as non-finite.
pub fn rtn_basis(position_km: [f64; 3], velocity_km_s: [f64; 3]) -> [[f64; 3]; 3] {
    let radial = unit(position_km);
    let normal = unit(cross(position_km, velocity_km_s));
    let transverse = cross(normal, radial);
    [radial, transverse, normal]
}

/// The 3x3 inertial position covariance (m^2) of a 6x6 RTN covariance at a state: `B^T P B`, with `P` the
/// position block (R, T, N) of `rtn` and `B` the [`rtn_basis`] of the state. The velocity rows are not needed: the
/// 2D Pc uses positions only.
pub fn position_covariance_inertial(position_km: [f64; 3], velocity_km_s: [f64; 3], rtn: &Covariance6) -> [[f64; 3]; 3] {
    let basis = rtn_basis(position_km, velocity_km_s);
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, cell) in row.iter_mut().enumerate() {
            let mut sum = 0.0;
            for k in 0..3 {
                for l in 0..3 {
                    sum += basis[k][i] * rtn.get(k, l) * basis[l][j];
                }
            }
            *cell = sum;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtn_of_a_circular_equatorial_orbit_is_x_y_z() {
        let basis = rtn_basis([7000.0, 0.0, 0.0], [0.0, 7.5, 0.0]);
        let identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        for (row, want) in basis.iter().zip(identity) {
            assert!(row.iter().zip(want).all(|(got, want)| (got - want).abs() < 1e-15), "{basis:?}");
        }
    }

    #[test]
    fn a_radial_variance_lands_along_the_position() {
        // Position along (1, 1, 0)/sqrt 2: a pure radial variance of 4 m^2 is 2 m^2 in x, y and in their covariance.
        let mut m = [[0.0; 6]; 6];
        m[0][0] = 4.0;
        let c = position_covariance_inertial([5000.0, 5000.0, 0.0], [-5.0, 5.0, 1.0], &Covariance6::from_matrix(&m));
        for (got, want) in [(c[0][0], 2.0), (c[1][1], 2.0), (c[0][1], 2.0), (c[1][0], 2.0), (c[2][2], 0.0), (c[0][2], 0.0)] {
            assert!((got - want).abs() < 1e-12, "{c:?}");
        }
    }

    #[test]
    fn the_trace_is_kept() {
        let mut m = [[0.0; 6]; 6];
        m[0][0] = 100.0;
        m[1][1] = 2500.0;
        m[2][2] = 400.0;
        m[1][0] = 30.0;
        let c = position_covariance_inertial([-1818.0, 1040.0, -6772.0], [-3.6, 6.27, 1.93], &Covariance6::from_matrix(&m));
        assert!((c[0][0] + c[1][1] + c[2][2] - 3000.0).abs() < 1e-9);
        assert!((c[0][1] - c[1][0]).abs() < 1e-12, "symmetric");
    }
}
