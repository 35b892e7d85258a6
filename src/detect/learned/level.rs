//! The noise by level: how a series' noise grows with its level (a count's variance is its
//! mean), learned as the slope of `ln r²` on `ln level`, so that `spread` judges each residual
//! against the noise usual at its level and a daily load cycle does not read as the noise
//! growing every afternoon. About 1 for a count, 0 for a noise that does not follow the level.

use serde::{Deserialize, Serialize};

use super::super::to_f32;

/// A slope learned from a level that varied less than this (variance of its logarithm) is
/// shrunk toward 0.
const LEVEL_SHRINK: f64 = 0.01;
/// The steepest slope applied (a noise ∝ level).
const MAX_NOISE_SLOPE: f64 = 2.0;

/// What a series learned of its noise by level (16 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NoiseByLevel {
    /// Mean and variance of the level coordinate, ln(|level| + usual noise)...
    log_level: f32,
    log_level_var: f32,
    /// ...the mean of ln(z² + 0.01), z the residual in units of the usual noise...
    log_noise: f32,
    /// ...and their covariance.
    log_level_cov: f32,
}

impl NoiseByLevel {
    /// The level coordinate of `level` for a series whose usual noise is `unit`.
    #[inline]
    pub fn coordinate(level: f64, unit: f64) -> f64 {
        fast_ln(level.abs() + unit)
    }

    /// The slope of ln r² on the level coordinate (shrunk toward 0 for a level that varied
    /// little, within [0, `MAX_NOISE_SLOPE`]): the usual noise ∝ level^(slope / 2).
    #[inline]
    pub fn slope(&self) -> f64 {
        (f64::from(self.log_level_cov) / (f64::from(self.log_level_var) + LEVEL_SHRINK))
            .clamp(0.0, MAX_NOISE_SLOPE)
    }

    /// The factor that scales a squared residual at level coordinate `x` to the noise usual at
    /// the mean level (1 for a noise that does not follow the level).
    #[inline]
    pub fn scale(&self, x: f64) -> f64 {
        let slope = self.slope();
        if slope > 0.0 {
            (-slope * (x - f64::from(self.log_level))).exp()
        } else {
            1.0
        }
    }

    /// Learns a sample at level coordinate `x` whose residual is `z` usual noise units, at pace
    /// `a`. Nothing learned yet (a new series, or one restored from before the noise was
    /// learned by level): it starts from this sample.
    #[inline]
    pub fn learn(&mut self, x: f64, z: f64, a: f64) {
        let q = fast_ln(z * z + 0.01);
        if self.log_level == 0.0 && self.log_level_var == 0.0 {
            self.log_level = to_f32(x);
            self.log_noise = to_f32(q);
            return;
        }
        let mean = f64::from(self.log_level) + a * (x - f64::from(self.log_level));
        let q_mean = f64::from(self.log_noise) + a * (q - f64::from(self.log_noise));
        let (d, e) = (x - mean, q - q_mean);
        let (var, cov) = (f64::from(self.log_level_var), f64::from(self.log_level_cov));
        self.log_level = to_f32(mean);
        self.log_noise = to_f32(q_mean);
        self.log_level_var = to_f32(var + a * (d * d - var));
        self.log_level_cov = to_f32(cov + a * (d * e - cov));
    }
}

/// ln(x) for a positive, finite `x`, within 1e-7 (on every sample: the exponent from the bits,
/// the mantissa's logarithm by its atanh series).
#[inline]
pub fn fast_ln(x: f64) -> f64 {
    if !(x.is_finite() && x >= f64::MIN_POSITIVE) {
        return x.ln();
    }
    let bits = x.to_bits();
    let mut e = ((bits >> 52) & 0x7ff) as i64 - 1023;
    // the mantissa in [1, 2), moved into [√½, √2)
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let ln_m = 2.0 * t * (1.0 + t2 * (1.0 / 3.0 + t2 * (0.2 + t2 * (1.0 / 7.0 + t2 / 9.0))));
    e as f64 * std::f64::consts::LN_2 + ln_m
}

#[cfg(test)]
mod tests {
    use super::fast_ln;

    #[test]
    fn fast_ln_is_within_1e7_of_ln() {
        let mut x = 1e-300f64;
        while x < 1e300 {
            for f in [1.0, 1.1, 1.3, 1.41, 1.42, 1.7, 1.99] {
                let y = x * f;
                assert!((fast_ln(y) - y.ln()).abs() < 1e-7, "{y}");
            }
            x *= 2.0;
        }
        assert!(fast_ln(0.0).is_infinite());
    }
}
