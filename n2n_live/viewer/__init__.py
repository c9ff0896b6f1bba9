"""The desktop viewer: GLFW + OpenGL 3.3 core + Dear ImGui (imgui-bundle, ImPlot).

`app.run(cfg, args)` is the entry that `n2n-live` calls when a display exists; `cli_args.add_arguments(parser)`
adds the viewer's options. Importing this package pulls in no OpenGL: the modules that need GLFW/OpenGL
(`app`, `lifecycle`, `window`, `gl_display`, `screenshot`, `panels`) import them themselves.
"""
