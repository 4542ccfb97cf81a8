//! Conjunctions built from their encounter-plane description, shared by the integration tests.

use collision_probability::ObjectAtTca;

/// Relative velocity direction of every built conjunction: the primary moves along +y, the secondary along +z, both
/// at 7.5 km/s, so the encounter plane is spanned by x and (y + z)/sqrt 2.
pub const PLANE_X: [f64; 3] = [1.0, 0.0, 0.0];
pub const PLANE_Z: [f64; 3] = [0.0, std::f64::consts::FRAC_1_SQRT_2, std::f64::consts::FRAC_1_SQRT_2];
pub const ALONG_V: [f64; 3] = [0.0, -std::f64::consts::FRAC_1_SQRT_2, std::f64::consts::FRAC_1_SQRT_2];

/// A conjunction whose combined covariance has standard deviations `sigma_major_m` along the in-plane direction at
/// `angle` from PLANE_X, `sigma_minor_m` across it in the plane, and `sigma_along_v_m` along the relative velocity
/// (which the 2D Pc must ignore); shared 30 % / 70 % between the objects. The miss (`miss_x_m`, `miss_z_m`) is in
/// the plane, so perpendicular to the relative velocity as at a true TCA.
pub fn conjunction(
    sigma_major_m: f64,
    sigma_minor_m: f64,
    angle: f64,
    sigma_along_v_m: f64,
    miss_x_m: f64,
    miss_z_m: f64,
) -> (ObjectAtTca, ObjectAtTca) {
    let (cos, sin) = (angle.cos(), angle.sin());
    let major: [f64; 3] = std::array::from_fn(|i| cos * PLANE_X[i] + sin * PLANE_Z[i]);
    let minor: [f64; 3] = std::array::from_fn(|i| -sin * PLANE_X[i] + cos * PLANE_Z[i]);
    let combined: [[f64; 3]; 3] = std::array::from_fn(|i| {
        std::array::from_fn(|j| {
            sigma_major_m.powi(2) * major[i] * major[j]
                + sigma_minor_m.powi(2) * minor[i] * minor[j]
                + sigma_along_v_m.powi(2) * ALONG_V[i] * ALONG_V[j]
        })
    });
    let primary = ObjectAtTca {
        position_km: [7000.0, 0.0, 0.0],
        velocity_km_s: [0.0, 7.5, 0.0],
        position_covariance_m2: combined.map(|row| row.map(|c| 0.3 * c)),
    };
    let miss_km: [f64; 3] = std::array::from_fn(|i| (miss_x_m * PLANE_X[i] + miss_z_m * PLANE_Z[i]) / 1000.0);
    let secondary = ObjectAtTca {
        position_km: std::array::from_fn(|i| primary.position_km[i] + miss_km[i]),
        velocity_km_s: [0.0, 0.0, 7.5],
        position_covariance_m2: combined.map(|row| row.map(|c| 0.7 * c)),
    };
    (primary, secondary)
}
