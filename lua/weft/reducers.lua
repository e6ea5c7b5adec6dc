--- weft.reducers — deprecated alias of weft.window (the context-window
-- reducers of agents), kept for one release: it goes away in 0.2. Not to
-- be confused with weft.reduce (state reducers of workflows).
return require "weft.window"
