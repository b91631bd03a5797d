"""Between a validated event and its row: group commit (batcher), where each
batch goes (writer), and replaying the spool."""
