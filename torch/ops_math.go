package torch

var (
	opAdd        = newOp("aten::add", "Tensor")
	opAddScalar  = newOp("aten::add", "Scalar")
	opSub        = newOp("aten::sub", "Tensor")
	opMul        = newOp("aten::mul", "Tensor")
	opMulScalar  = newOp("aten::mul", "Scalar")
	opDiv        = newOp("aten::div", "Tensor")
	opDivScalar  = newOp("aten::div", "Scalar")
	opNeg        = newOp("aten::neg", "")
	opEq         = newOp("aten::eq", "Tensor")
	opNe         = newOp("aten::ne", "Tensor")
	opLt         = newOp("aten::lt", "Tensor")
	opLe         = newOp("aten::le", "Tensor")
	opGt         = newOp("aten::gt", "Tensor")
	opGe         = newOp("aten::ge", "Tensor")
	opEqScalar   = newOp("aten::eq", "Scalar")
	opGtScalar   = newOp("aten::gt", "Scalar")
	opLtScalar   = newOp("aten::lt", "Scalar")
	opWhere      = newOp("aten::where", "self")
	opClamp      = newOp("aten::clamp", "")
	opExp        = newOp("aten::exp", "")
	opLog        = newOp("aten::log", "")
	opSqrt       = newOp("aten::sqrt", "")
	opPowScalar  = newOp("aten::pow", "Tensor_Scalar")
	opPowTensor  = newOp("aten::pow", "Tensor_Tensor")
	opAbs        = newOp("aten::abs", "")
	opSign       = newOp("aten::sign", "")
	opMaximum    = newOp("aten::maximum", "")
	opMinimum    = newOp("aten::minimum", "")
	opIsFinite   = newOp("aten::isfinite", "")
	opMatmul     = newOp("aten::matmul", "")
	opAddInplace = newOp("aten::add_", "Tensor")
	opMulInplace = newOp("aten::mul_", "Scalar")
	opMulTInpl   = newOp("aten::mul_", "Tensor")
	opDivInplace = newOp("aten::div_", "Tensor")
	opAddcmul    = newOp("aten::addcmul_", "")
	opAddcdiv    = newOp("aten::addcdiv_", "")
	opSqrtInpl   = newOp("aten::sqrt_", "")
	opMaximumOut = newOp("aten::maximum", "out")
	opLerp       = newOp("aten::lerp_", "Scalar")
)

// Add returns t + other (broadcasting).
func (t *Tensor) Add(other *Tensor) (*Tensor, error) { return opAdd.tensor(newArgs().T(t).T(other)) }

// AddScaled returns t + alpha*other.
func (t *Tensor) AddScaled(other *Tensor, alpha float64) (*Tensor, error) {
	return opAdd.tensor(newArgs().T(t).T(other).Double(alpha))
}

// AddScalar returns t + v.
func (t *Tensor) AddScalar(v float64) (*Tensor, error) {
	return opAddScalar.tensor(newArgs().T(t).Double(v))
}

// Sub returns t - other.
func (t *Tensor) Sub(other *Tensor) (*Tensor, error) { return opSub.tensor(newArgs().T(t).T(other)) }

// Mul returns t * other, elementwise.
func (t *Tensor) Mul(other *Tensor) (*Tensor, error) { return opMul.tensor(newArgs().T(t).T(other)) }

// MulScalar returns t * v.
func (t *Tensor) MulScalar(v float64) (*Tensor, error) {
	return opMulScalar.tensor(newArgs().T(t).Double(v))
}

// Div returns t / other, elementwise (true division).
func (t *Tensor) Div(other *Tensor) (*Tensor, error) { return opDiv.tensor(newArgs().T(t).T(other)) }

// DivScalar returns t / v.
func (t *Tensor) DivScalar(v float64) (*Tensor, error) {
	return opDivScalar.tensor(newArgs().T(t).Double(v))
}

// Neg returns -t.
func (t *Tensor) Neg() (*Tensor, error) { return opNeg.tensor(newArgs().T(t)) }

// Eq returns t == other as a bool tensor.
func (t *Tensor) Eq(other *Tensor) (*Tensor, error) { return opEq.tensor(newArgs().T(t).T(other)) }

// Ne returns t != other.
func (t *Tensor) Ne(other *Tensor) (*Tensor, error) { return opNe.tensor(newArgs().T(t).T(other)) }

// Lt returns t < other.
func (t *Tensor) Lt(other *Tensor) (*Tensor, error) { return opLt.tensor(newArgs().T(t).T(other)) }

// Le returns t <= other.
func (t *Tensor) Le(other *Tensor) (*Tensor, error) { return opLe.tensor(newArgs().T(t).T(other)) }

// Gt returns t > other.
func (t *Tensor) Gt(other *Tensor) (*Tensor, error) { return opGt.tensor(newArgs().T(t).T(other)) }

// Ge returns t >= other.
func (t *Tensor) Ge(other *Tensor) (*Tensor, error) { return opGe.tensor(newArgs().T(t).T(other)) }

// EqScalar returns t == v.
func (t *Tensor) EqScalar(v float64) (*Tensor, error) {
	return opEqScalar.tensor(newArgs().T(t).Double(v))
}

// GtScalar returns t > v.
func (t *Tensor) GtScalar(v float64) (*Tensor, error) {
	return opGtScalar.tensor(newArgs().T(t).Double(v))
}

// LtScalar returns t < v.
func (t *Tensor) LtScalar(v float64) (*Tensor, error) {
	return opLtScalar.tensor(newArgs().T(t).Double(v))
}

// Where returns a where cond is true and b elsewhere.
func Where(cond, a, b *Tensor) (*Tensor, error) {
	return opWhere.tensor(newArgs().T(cond).T(a).T(b))
}

// Clamp limits t to [lo, hi].
func (t *Tensor) Clamp(lo, hi float64) (*Tensor, error) {
	return opClamp.tensor(newArgs().T(t).Double(lo).Double(hi))
}

// ClampMin limits t from below.
func (t *Tensor) ClampMin(lo float64) (*Tensor, error) {
	return opClamp.tensor(newArgs().T(t).Double(lo).None())
}

// Exp returns e^t.
func (t *Tensor) Exp() (*Tensor, error) { return opExp.tensor(newArgs().T(t)) }

// Log returns the natural logarithm of t.
func (t *Tensor) Log() (*Tensor, error) { return opLog.tensor(newArgs().T(t)) }

// Sqrt returns the square root of t.
func (t *Tensor) Sqrt() (*Tensor, error) { return opSqrt.tensor(newArgs().T(t)) }

// Pow returns t^p.
func (t *Tensor) Pow(p float64) (*Tensor, error) { return opPowScalar.tensor(newArgs().T(t).Double(p)) }

// PowTensor returns t^p elementwise.
func (t *Tensor) PowTensor(p *Tensor) (*Tensor, error) {
	return opPowTensor.tensor(newArgs().T(t).T(p))
}

// Abs returns |t|.
func (t *Tensor) Abs() (*Tensor, error) { return opAbs.tensor(newArgs().T(t)) }

// Sign returns -1, 0 or 1 by the sign of each element.
func (t *Tensor) Sign() (*Tensor, error) { return opSign.tensor(newArgs().T(t)) }

// Maximum returns the elementwise maximum of t and other.
func (t *Tensor) Maximum(other *Tensor) (*Tensor, error) {
	return opMaximum.tensor(newArgs().T(t).T(other))
}

// Minimum returns the elementwise minimum of t and other.
func (t *Tensor) Minimum(other *Tensor) (*Tensor, error) {
	return opMinimum.tensor(newArgs().T(t).T(other))
}

// IsFinite returns a bool tensor, true where t is neither NaN nor ±Inf.
func (t *Tensor) IsFinite() (*Tensor, error) { return opIsFinite.tensor(newArgs().T(t)) }

// Matmul returns the matrix product of t and other, with NumPy's rules
// for 1-d and batched operands.
func (t *Tensor) Matmul(other *Tensor) (*Tensor, error) {
	return opMatmul.tensor(newArgs().T(t).T(other))
}

// Add_ adds alpha*other to t in place.
func (t *Tensor) Add_(other *Tensor, alpha float64) error {
	return opAddInplace.inplace(newArgs().T(t).T(other).Double(alpha))
}

// MulScalar_ multiplies t by v in place.
func (t *Tensor) MulScalar_(v float64) error {
	return opMulInplace.inplace(newArgs().T(t).Double(v))
}

// Mul_ multiplies t by other in place.
func (t *Tensor) Mul_(other *Tensor) error { return opMulTInpl.inplace(newArgs().T(t).T(other)) }

// Div_ divides t by other in place.
func (t *Tensor) Div_(other *Tensor) error { return opDivInplace.inplace(newArgs().T(t).T(other)) }

// Addcmul_ adds value*a*b to t in place.
func (t *Tensor) Addcmul_(a, b *Tensor, value float64) error {
	return opAddcmul.inplace(newArgs().T(t).T(a).T(b).Double(value))
}

// Addcdiv_ adds value*a/b to t in place.
func (t *Tensor) Addcdiv_(a, b *Tensor, value float64) error {
	return opAddcdiv.inplace(newArgs().T(t).T(a).T(b).Double(value))
}

// Sqrt_ takes the square root of t in place.
func (t *Tensor) Sqrt_() error { return opSqrtInpl.inplace(newArgs().T(t)) }

// MaximumInto writes the elementwise maximum of t and other into out.
func (t *Tensor) MaximumInto(other, out *Tensor) error {
	return opMaximumOut.inplace(newArgs().T(t).T(other).T(out))
}

// Lerp_ moves t towards end by weight in place: t += weight*(end-t).
func (t *Tensor) Lerp_(end *Tensor, weight float64) error {
	return opLerp.inplace(newArgs().T(t).T(end).Double(weight))
}

var opAddScalarInplace = newOp("aten::add_", "Scalar")

// AddScalar_ adds v to t in place.
func (t *Tensor) AddScalar_(v float64) error {
	return opAddScalarInplace.inplace(newArgs().T(t).Double(v))
}

// AddInt_ adds the integer v to t in place; unlike AddScalar_ it keeps an
// integer tensor's type (a counter, say).
func (t *Tensor) AddInt_(v int64) error {
	return opAddScalarInplace.inplace(newArgs().T(t).Int(v))
}
