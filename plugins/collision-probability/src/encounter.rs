//! The encounter plane both methods integrate over: the combined covariance projected perpendicular to the relative
//! velocity, in its principal axes, with the centre of the hard-body circle (README.md, "Encounter plane").

use crate::frames::{Vec3, cross, dot, mat_vec, norm, scale, sub, unit};
use crate::{ObjectAtTca, PcError};

/// Below this relative speed (m/s) there is no encounter plane. Velocities given in km/s at orbital speeds round at
/// about 1e-12 m/s, so anything smaller than 1 nm/s is the same velocity twice.
const MIN_RELATIVE_SPEED_M_S: f64 = 1e-9;

/// The smaller eigenvalue of the projected covariance must exceed this fraction of the larger: beyond an axis ratio
/// of 1e6 the smaller axis is below the rounding of the larger one and the Gaussian is effectively degenerate.
const MIN_EIGENVALUE_RATIO: f64 = 1e-12;

/// The 2D problem: a Gaussian with independent axes (standard deviations `sigma_major_m` >= `sigma_minor_m`)
/// centred at the origin, and a circle of radius `hard_body_radius_m` centred at (`centre_major_m`,
/// `centre_minor_m`) in those axes. The Pc is the Gaussian's mass inside the circle.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EncounterPlane {
    pub sigma_major_m: f64,
    pub sigma_minor_m: f64,
    pub centre_major_m: f64,
    pub centre_minor_m: f64,
    pub hard_body_radius_m: f64,
}

impl EncounterPlane {
    /// Validates the inputs and builds the plane, as README.md specifies.
    pub fn new(a: &ObjectAtTca, b: &ObjectAtTca, hard_body_radius_m: f64) -> Result<EncounterPlane, PcError> {
        check_finite(a, b, hard_body_radius_m)?;
        if hard_body_radius_m < 0.0 {
            return Err(PcError::NegativeHardBodyRadius { hard_body_radius_m });
        }
        // Metres throughout: the difference is taken in km first (the states' own units), then scaled.
        let miss_m = scale(sub(b.position_km, a.position_km), 1000.0);
        let relative_velocity_m_s = scale(sub(b.velocity_km_s, a.velocity_km_s), 1000.0);
        let relative_speed_m_s = norm(relative_velocity_m_s);
        if relative_speed_m_s < MIN_RELATIVE_SPEED_M_S {
            return Err(PcError::ZeroRelativeVelocity { relative_speed_m_s });
        }
        let (x_axis, z_axis) = plane_axes(miss_m, relative_velocity_m_s);
        let mut combined = [[0.0; 3]; 3];
        for (i, row) in combined.iter_mut().enumerate() {
            for (j, cell) in row.iter_mut().enumerate() {
                *cell = a.position_covariance_m2[i][j] + b.position_covariance_m2[i][j];
            }
        }
        let xx = dot(x_axis, mat_vec(&combined, x_axis));
        let zz = dot(z_axis, mat_vec(&combined, z_axis));
        // The mean of both off-diagonal terms: a slightly asymmetric input (rounding in a file) counts as its
        // symmetric part.
        let xz = 0.5 * (dot(x_axis, mat_vec(&combined, z_axis)) + dot(z_axis, mat_vec(&combined, x_axis)));
        let (major_m2, minor_m2, major_axis) = principal_axes(xx, xz, zz);
        if !(minor_m2 > 0.0 && minor_m2 > MIN_EIGENVALUE_RATIO * major_m2) {
            return Err(PcError::NotPositiveDefinite { major_m2, minor_m2 });
        }
        // The circle's centre is the full miss distance along the plane's x axis, as CARA's Pc2D_Foster does.
        let miss_distance_m = norm(miss_m);
        Ok(EncounterPlane {
            sigma_major_m: major_m2.sqrt(),
            sigma_minor_m: minor_m2.sqrt(),
            centre_major_m: miss_distance_m * major_axis[0],
            centre_minor_m: miss_distance_m * -major_axis[1],
            hard_body_radius_m,
        })
    }
}

fn check_finite(a: &ObjectAtTca, b: &ObjectAtTca, hard_body_radius_m: f64) -> Result<(), PcError> {
    let all_finite = |values: &[f64]| values.iter().all(|v| v.is_finite());
    let checks: [(&'static str, bool); 7] = [
        ("the first object's position", all_finite(&a.position_km)),
        ("the first object's velocity", all_finite(&a.velocity_km_s)),
        ("the first object's covariance", all_finite(a.position_covariance_m2.as_flattened())),
        ("the second object's position", all_finite(&b.position_km)),
        ("the second object's velocity", all_finite(&b.velocity_km_s)),
        ("the second object's covariance", all_finite(b.position_covariance_m2.as_flattened())),
        ("the hard-body radius", hard_body_radius_m.is_finite()),
    ];
    match checks.iter().find(|(_, finite)| !finite) {
        Some((what, _)) => Err(PcError::NonFinite { what }),
        None => Ok(()),
    }
}

/// The plane's axes, as CARA's Pc2D_Foster builds them: y = v/|v| (out of the plane), z = (r x v)/|r x v|,
/// x = y x z (along the component of r perpendicular to v). When r is zero or parallel to v, r x v gives no
/// direction and any x perpendicular to v will do (with r = 0 the centre is the origin whatever x is): x is then
/// the inertial axis least aligned with v, made perpendicular to it.
fn plane_axes(miss_m: Vec3, relative_velocity_m_s: Vec3) -> (Vec3, Vec3) {
    let y_axis = unit(relative_velocity_m_s);
    let normal = cross(miss_m, y_axis);
    if norm(normal) > 1e-12 * norm(miss_m) && norm(normal) > 0.0 {
        let z_axis = unit(normal);
        return (cross(y_axis, z_axis), z_axis);
    }
    let least = (0..3).min_by(|&i, &j| y_axis[i].abs().total_cmp(&y_axis[j].abs())).unwrap_or(0);
    let mut e = [0.0; 3];
    e[least] = 1.0;
    let x_axis = unit(sub(e, scale(y_axis, dot(e, y_axis))));
    (x_axis, cross(x_axis, y_axis))
}

/// Eigen-decomposition of the symmetric 2x2 `[[xx, xz], [xz, zz]]`: (larger eigenvalue, smaller eigenvalue, unit
/// eigenvector of the larger as (x, z) components). The smaller eigenvalue is the determinant over the larger,
/// which keeps its relative accuracy where `mean - root` would cancel.
fn principal_axes(xx: f64, xz: f64, zz: f64) -> (f64, f64, [f64; 2]) {
    let mean = 0.5 * (xx + zz);
    let root = (0.25 * (xx - zz) * (xx - zz) + xz * xz).sqrt();
    let major = mean + root;
    let minor = if major > 0.0 { (xx * zz - xz * xz) / major } else { mean - root };
    // Of the two expressions of the eigenvector, the one built on the larger diagonal term does not cancel.
    let vector = if xz == 0.0 {
        if xx >= zz { [1.0, 0.0] } else { [0.0, 1.0] }
    } else if xx >= zz {
        [major - zz, xz]
    } else {
        [xz, major - xx]
    };
    let length = (vector[0] * vector[0] + vector[1] * vector[1]).sqrt();
    (major, minor, [vector[0] / length, vector[1] / length])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principal_axes_of_a_rotated_ellipse() {
        // 100 m^2 along (cos 30, sin 30), 4 m^2 across.
        let (c, s) = (30f64.to_radians().cos(), 30f64.to_radians().sin());
        let (xx, xz, zz) = (100.0 * c * c + 4.0 * s * s, 96.0 * c * s, 100.0 * s * s + 4.0 * c * c);
        let (major, minor, axis) = principal_axes(xx, xz, zz);
        assert!((major - 100.0).abs() < 1e-12 && (minor - 4.0).abs() < 1e-12, "{major} {minor}");
        assert!((axis[0] - c).abs() < 1e-12 && (axis[1] - s).abs() < 1e-12, "{axis:?}");
    }

    #[test]
    fn the_centre_is_the_full_miss_distance_even_off_tca() {
        // The miss has a component along v (the reported TCA is off by 0.1 s): the centre stays at |r| = 500 m,
        // as CARA places it, not at the 400 m of its perpendicular component.
        let covariance = [[100.0, 0.0, 0.0], [0.0, 100.0, 0.0], [0.0, 0.0, 100.0]];
        let a = ObjectAtTca { position_km: [7000.0, 0.0, 0.0], velocity_km_s: [0.0, 7.5, 0.0], position_covariance_m2: covariance };
        let b = ObjectAtTca { position_km: [7000.4, 0.3, 0.0], velocity_km_s: [0.0, 10.5, 0.0], ..a };
        let plane = EncounterPlane::new(&a, &b, 10.0).unwrap();
        let distance = plane.centre_major_m.hypot(plane.centre_minor_m);
        assert!((distance - 500.0).abs() < 1e-6, "{plane:?}");
    }
}
