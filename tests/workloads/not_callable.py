step = 42
