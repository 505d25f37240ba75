// The builder's vocabulary: kinds of condition, operators, units, as the controls offer them.

// --- Vocabulary -----------------------------------------------------------------------

// Labels read as the sentence does (segmentation/sentence.py): "performed", "did not perform".
export const KINDS = [
  ["did", "performed an event"],
  ["did_not", "did not perform"],
  ["aggregate", "total of a property"],
  ["first", "first performed"],
  ["last", "last performed"],
  ["regular", "performed regularly"],
  ["then", "performed steps in order"],
  ["dropped", "dropped off"],
  ["trait", "has a trait"],
  ["segment", "is in segment"],
  ["not_segment", "is not in segment"]
];
export const FILTER_OPS = [
  ["eq", "is"], ["neq", "is not"], ["in", "is one of"], ["not_in", "is none of"],
  ["contains", "contains"], ["not_contains", "does not contain"], ["starts_with", "starts with"],
  ["ends_with", "ends with"], ["gt", "greater than"], ["gte", "at least"], ["lt", "less than"],
  ["lte", "at most"], ["between", "between"], ["before", "before"], ["after", "after"],
  ["is_set", "is set"], ["is_not_set", "is not set"]
];
export const COUNT_OPS = [
  ["gte", "at least"], ["lte", "at most"], ["eq", "exactly"], ["gt", "more than"], ["lt", "fewer than"],
  ["neq", "not exactly"], ["between", "between"]
];
export const NUMBER_OPS = [
  ["gte", "at least"], ["lte", "at most"], ["eq", "exactly"], ["gt", "more than"], ["lt", "less than"],
  ["neq", "other than"], ["between", "between"]
];
export const FUNCTIONS = [["sum", "total"], ["avg", "average"], ["min", "lowest"], ["max", "highest"]];
export const UNITS = [["m", "minutes"], ["h", "hours"], ["d", "days"], ["w", "weeks"]];
export const WINDOW_MODES = [
  ["any", "at any time"], ["last", "in the last"], ["between", "between"], ["more", "more than"],
  ["custom", "from / to (dates)"]
];
export const NUMERIC_FILTER_OPS = { gt: 1, gte: 1, lt: 1, lte: 1 };
