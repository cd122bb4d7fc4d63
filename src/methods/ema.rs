//! An exponential moving average of a model's weights: the teacher of Mean Teacher and the
//! evaluated model of FixMatch-style recipes, updated by a method's [`super::Method::after_step`].
//!
//! The teacher is a second copy of the model whose variables live in the same [`VarMap`] under
//! their own prefix (so they are checkpointed and saved with the selected weights). After each
//! step every teacher parameter becomes `decay·teacher + (1 − decay)·student`; batch-norm
//! running statistics are copied from the student (as USB and TorchSSL do).

use candle_core::{Result, Var};
use candle_nn::VarMap;

/// EMA of the variables under one prefix into those under another.
#[derive(Debug, Clone)]
pub struct Ema {
    decay: f64,
    student: String,
    teacher: String,
}

fn is_buffer(name: &str) -> bool {
    name.ends_with("running_mean") || name.ends_with("running_var")
}

impl Ema {
    /// Teacher variables `teacher.rest` follow student variables `student.rest` with `decay`.
    pub fn new(decay: f64, student: &str, teacher: &str) -> Self {
        Self {
            decay,
            student: student.to_string(),
            teacher: teacher.to_string(),
        }
    }

    /// (student, teacher) variable pairs, sorted by name; an error if a student variable has no
    /// teacher of the same shape.
    fn pairs(&self, vars: &VarMap) -> Result<Vec<(String, Var, Var)>> {
        let data = vars.data().lock().expect("varmap lock");
        let mut out = Vec::new();
        for (name, s) in data.iter() {
            let Some(rest) = name.strip_prefix(&self.student) else {
                continue;
            };
            let tname = format!("{}{rest}", self.teacher);
            let t = data.get(&tname).ok_or_else(|| {
                candle_core::Error::Msg(format!("EMA: no teacher variable {tname} for {name}"))
            })?;
            if t.shape() != s.shape() {
                candle_core::bail!("EMA: {tname} and {name} differ in shape");
            }
            out.push((name.clone(), s.clone(), t.clone()));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Sets the teacher to a copy of the student (before the first step).
    pub fn copy(&self, vars: &VarMap) -> Result<()> {
        for (_, s, t) in self.pairs(vars)? {
            t.set(&s.as_tensor().copy()?)?;
        }
        Ok(())
    }

    /// One EMA update of the teacher from the student.
    pub fn update(&self, vars: &VarMap) -> Result<()> {
        self.update_with(vars, self.decay)
    }

    /// The decay of update `updates` (1 = the first) with Mean Teacher's warm-up
    /// (Tarvainen & Valpola's code): min(decay, 1 − 1/(updates + 1)), the true average of the
    /// weights so far until the moving average weighs them more, so that a short run's teacher
    /// is not mostly its initialisation (0.999¹⁰⁰⁰ ≈ 0.37).
    pub fn warmed_decay(&self, updates: usize) -> f64 {
        self.decay.min(1.0 - 1.0 / (updates as f64 + 1.0))
    }

    /// One EMA update with an explicit `decay`.
    pub fn update_with(&self, vars: &VarMap, decay: f64) -> Result<()> {
        for (name, s, t) in self.pairs(vars)? {
            let next = if is_buffer(&name) {
                s.as_tensor().copy()?
            } else {
                ((t.as_tensor() * decay)? + (s.as_tensor() * (1.0 - decay))?)?
            };
            t.set(&next)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn the_decay_warms_up_as_mean_teachers_code() {
        let ema = Ema::new(0.999, "s.", "t.");
        // 1 − 1/(n + 1): the first update averages init and step 1 equally.
        assert_eq!(ema.warmed_decay(1), 0.5);
        assert!((ema.warmed_decay(9) - 0.9).abs() < 1e-15);
        assert!((ema.warmed_decay(999) - 0.999).abs() < 1e-15);
        assert_eq!(ema.warmed_decay(5000), 0.999);
    }

    #[test]
    fn the_teacher_moves_towards_the_student_by_one_minus_decay() {
        let vars = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let _s = vb
            .pp("student")
            .get_with_hints(2, "w", candle_nn::Init::Const(1.0))
            .unwrap();
        let _sm = vb
            .pp("student")
            .get_with_hints(2, "bn.running_mean", candle_nn::Init::Const(5.0))
            .unwrap();
        let _t = vb
            .pp("teacher")
            .get_with_hints(2, "w", candle_nn::Init::Const(0.0))
            .unwrap();
        let _tm = vb
            .pp("teacher")
            .get_with_hints(2, "bn.running_mean", candle_nn::Init::Const(0.0))
            .unwrap();
        let ema = Ema::new(0.9, "student.", "teacher.");
        ema.update(&vars).unwrap();
        // 0.9·0 + 0.1·1 = 0.1; running statistics are copied.
        let w = vars.data().lock().unwrap()["teacher.w"]
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        assert!(w.iter().all(|v| (v - 0.1).abs() < 1e-7), "{w:?}");
        let m = vars.data().lock().unwrap()["teacher.bn.running_mean"]
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(m, vec![5.0, 5.0]);
        ema.update(&vars).unwrap();
        // 0.9·0.1 + 0.1·1 = 0.19.
        let w = vars.data().lock().unwrap()["teacher.w"]
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        assert!(w.iter().all(|v| (v - 0.19).abs() < 1e-6), "{w:?}");
        ema.copy(&vars).unwrap();
        let w = vars.data().lock().unwrap()["teacher.w"]
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        assert_eq!(w, vec![1.0, 1.0]);
    }

    #[test]
    fn a_student_variable_without_teacher_is_an_error() {
        let vars = VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        vb.pp("student").get(2, "w").unwrap();
        let err = Ema::new(0.9, "student.", "teacher.")
            .update(&vars)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "EMA: no teacher variable teacher.w for student.w");
    }
}
