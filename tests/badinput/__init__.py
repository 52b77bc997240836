"""The bad-input corpus (issue 12): every bad input a production warehouse produces ends as a result
with a reason (a status and a message naming the culprit), never a bare traceback or a silent pass."""
