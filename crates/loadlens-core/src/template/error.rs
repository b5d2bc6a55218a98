//! What can go wrong with a template: compiling it (a typo in an expression, caught by
//! `loadlens validate`), rendering it for one VU (a variable with no value yet), and
//! substituting `${VAR}` in scenario text.

/// A template that does not compile: what is wrong, with the expression as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// `{{` without its `}}`.
    #[error("unclosed `{{{{` in `{text}`: expected `}}}}`")]
    Unclosed {
        /// The whole template text.
        text: String,
    },
    /// `{{ }}` with nothing inside.
    #[error("empty expression `{{{{ }}}}`")]
    Empty,
    /// A variable that no capture, loop, `vars:` entry or feeder defines.
    #[error("unknown variable `{name}` in `{{{{ {expr} }}}}`: define it with a capture, a loop, `vars:` or a data feeder")]
    UnknownVariable {
        /// The variable's name.
        name: String,
        /// The expression it appears in.
        expr: String,
    },
    /// Neither a variable name nor a function call.
    #[error("invalid expression `{{{{ {expr} }}}}`: expected a variable name or a function call such as `uuid()`")]
    InvalidExpression {
        /// The expression.
        expr: String,
    },
    /// A function that does not exist.
    #[error("unknown function `{function}`: expected uuid, random_int, random_choice, random_string, now_unix, now_unix_ms or counter")]
    UnknownFunction {
        /// The function's name as written.
        function: String,
    },
    /// A function called with the wrong number of arguments.
    #[error("`{function}` takes {expected} argument(s), got {got}")]
    Arity {
        /// The function.
        function: String,
        /// How many arguments it takes.
        expected: usize,
        /// How many it was given.
        got: usize,
    },
    /// A non-integer argument where an integer is needed.
    #[error("`{function}` expects integer arguments, got `{argument}`")]
    NotInteger {
        /// The function.
        function: String,
        /// The argument as written.
        argument: String,
    },
    /// `random_int(a, b)` with `a > b`.
    #[error("random_int({min}, {max}): the minimum is larger than the maximum")]
    EmptyRange {
        /// The first argument.
        min: i64,
        /// The second argument.
        max: i64,
    },
    /// `random_choice()` with nothing to choose from.
    #[error("random_choice needs at least one argument")]
    NoChoices,
}

/// A template that cannot be rendered for this VU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// A variable with no value yet (its capture has not run or did not match).
    #[error("variable `{name}` has no value (not captured or set yet)")]
    Unset {
        /// The variable's name.
        name: String,
    },
}

/// `${VAR}` in scenario text with no value and no default.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("environment variable `{name}` is not set: export it or write `${{{name}:-default}}`")]
pub struct UnsetEnv {
    /// Byte offset of the `${` in the text.
    pub offset: usize,
    /// The variable's name.
    pub name: String,
}
