"""The input rules, once each: what a model sees for a row, in training and serving alike
(docs/architecture.md). Stage: after jsmp.store, before jsmp.data; imports base, data/schema and
store only.

- spec: InputSpec, the whole input contract saved with a run (versioned preprocess.json).
- fill: the NaN-fill rules (FILLS, fill_nan, ffill_days, fill_rows).
- state: OnlineState, serving's per-instrument fill and window ring (2021: the one-instrument case).
- columns: require_columns, the one missing-column message.
- daygrid: the day-sample grid (time_grid: a row's time step; time_of_day).
- windows: WindowSpec and the window arithmetic (which rows make a target's window, left padding).
- lags: the previous-date lag rule (is_lag_date, lag_key, KeyIndex, previous_date_rows); lag names
  by pattern are the layout's (jsmp.data.schema is_lag, lag_name, responders).
"""
