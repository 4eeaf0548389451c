"""The finding and report model: plain typed data that analysis produces, storage saves, judgement
reads and every renderer renders. It imports nothing of leaksoak's but itself."""
