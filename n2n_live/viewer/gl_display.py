"""The image area: HDR buffers as float textures, drawn by one shader that applies exposure and the tonemap.

Textures are created once per buffer name and reused (glTexSubImage2D) while the size holds. The shader draws a
full-viewport triangle pair; a split view samples a second texture right of the divider. OpenGL 3.3 core.
"""
from __future__ import annotations

import numpy as np
import OpenGL.GL as gl

from .modes import KIND_RADIANCE

VERTEX_SHADER = """
#version 330 core
out vec2 uv;
void main() {
    // Two triangles covering the viewport, generated from gl_VertexID (no vertex buffer needed).
    vec2 p[6] = vec2[6](vec2(0, 0), vec2(1, 0), vec2(1, 1), vec2(0, 0), vec2(1, 1), vec2(0, 1));
    uv = p[gl_VertexID];
    gl_Position = vec4(uv * 2.0 - 1.0, 0.0, 1.0);
}
"""

FRAGMENT_SHADER = """
#version 330 core
in vec2 uv;
out vec4 colour;
uniform sampler2D tex_left;
uniform sampler2D tex_right;
uniform int kind_left;
uniform int kind_right;
uniform float split;      // divider in [0, 1] of the width; >= 1 shows only the left texture
uniform float exposure;
uniform float heat_gain;

// The paper's tonemap T(v) = (v / (1 + v))^(1/2.2), after the exposure scale (n2n_live.tonemap.T).
vec3 T(vec3 v) { v = max(v * exposure, 0.0); return pow(v / (1.0 + v), vec3(1.0 / 2.2)); }

// A black-red-yellow-white heat ramp for errors in [0, 1].
vec3 heat(float e) {
    e = clamp(e, 0.0, 1.0);
    return clamp(vec3(3.0 * e, 3.0 * e - 1.0, 3.0 * e - 2.0), 0.0, 1.0);
}

vec3 shade(vec3 v, int kind) {
    if (kind == 0) return T(v);                             // linear HDR radiance
    if (kind == 1) return clamp(v, 0.0, 1.0);               // albedo (reflectance in [0, 1])
    if (kind == 2) return clamp(0.5 * v + 0.5, 0.0, 1.0);   // normal in [-1, 1]^3
    return heat(v.r * heat_gain);                           // error magnitude
}

void main() {
    vec2 t = vec2(uv.x, 1.0 - uv.y);  // textures hold the image top row first
    bool right = uv.x >= split;
    vec3 c = right ? shade(texture(tex_right, t).rgb, kind_right) : shade(texture(tex_left, t).rgb, kind_left);
    colour = vec4(c, 1.0);
}
"""


def _compile(kind, src: str) -> int:
    sh = gl.glCreateShader(kind)
    gl.glShaderSource(sh, src)
    gl.glCompileShader(sh)
    if not gl.glGetShaderiv(sh, gl.GL_COMPILE_STATUS):
        raise RuntimeError("shader compile failed: " + gl.glGetShaderInfoLog(sh).decode(errors="replace"))
    return sh


class ImageDisplay:
    """Float textures by name + the display program. Call only with the window's GL context current."""

    def __init__(self):
        vs, fs = _compile(gl.GL_VERTEX_SHADER, VERTEX_SHADER), _compile(gl.GL_FRAGMENT_SHADER, FRAGMENT_SHADER)
        self.program = gl.glCreateProgram()
        gl.glAttachShader(self.program, vs)
        gl.glAttachShader(self.program, fs)
        gl.glLinkProgram(self.program)
        if not gl.glGetProgramiv(self.program, gl.GL_LINK_STATUS):
            raise RuntimeError("shader link failed: " + gl.glGetProgramInfoLog(self.program).decode(errors="replace"))
        gl.glDeleteShader(vs)
        gl.glDeleteShader(fs)
        self.vao = gl.glGenVertexArrays(1)  # core profile: drawing needs a bound vertex array, even an empty one
        self.loc = {n: gl.glGetUniformLocation(self.program, n)
                    for n in ("tex_left", "tex_right", "kind_left", "kind_right", "split", "exposure", "heat_gain")}
        self.textures: dict[str, tuple[int, int, int]] = {}  # name -> (id, width, height)
        self.uploads = 0  # texture (re)allocations, for tests: reuse means this stays put

    def upload(self, name: str, image) -> None:
        """Upload an HxWx3 float image (torch or numpy) to the texture `name`, reusing it while the size holds."""
        if hasattr(image, "detach"):
            image = image.detach().float().cpu().numpy()
        a = np.ascontiguousarray(image, dtype=np.float32)
        if a.ndim == 2:
            a = np.repeat(a[..., None], 3, axis=-1)
        h, w = a.shape[:2]
        tex = self.textures.get(name)
        gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 4)
        if tex is None or tex[1:] != (w, h):
            tid = tex[0] if tex else gl.glGenTextures(1)
            gl.glBindTexture(gl.GL_TEXTURE_2D, tid)
            gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_S, gl.GL_CLAMP_TO_EDGE)
            gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_T, gl.GL_CLAMP_TO_EDGE)
            gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, gl.GL_RGB32F, w, h, 0, gl.GL_RGB, gl.GL_FLOAT, a)
            self.textures[name] = (tid, w, h)
            self.uploads += 1
        else:
            gl.glBindTexture(gl.GL_TEXTURE_2D, tex[0])
            gl.glTexSubImage2D(gl.GL_TEXTURE_2D, 0, 0, 0, w, h, gl.GL_RGB, gl.GL_FLOAT, a)
        gl.glBindTexture(gl.GL_TEXTURE_2D, 0)

    def has(self, name: str) -> bool:
        return name in self.textures

    def draw(self, rect, left: str, kind_left: int, right: str | None = None, kind_right: int = KIND_RADIANCE,
             split: float = 1.0, exposure: float = 1.0, heat_gain: float = 4.0, smooth: bool = True) -> None:
        """Draw into `rect` = (x, y, w, h) in framebuffer pixels, y measured from the bottom (OpenGL)."""
        if left not in self.textures:
            return
        right = right if right in self.textures else left
        x, y, w, h = (int(round(v)) for v in rect)
        if w <= 0 or h <= 0:
            return
        gl.glViewport(x, y, w, h)
        gl.glDisable(gl.GL_BLEND)
        gl.glDisable(gl.GL_SCISSOR_TEST)
        gl.glUseProgram(self.program)
        filt = gl.GL_LINEAR if smooth else gl.GL_NEAREST
        for unit, name in ((0, left), (1, right)):
            gl.glActiveTexture(gl.GL_TEXTURE0 + unit)
            gl.glBindTexture(gl.GL_TEXTURE_2D, self.textures[name][0])
            gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MIN_FILTER, filt)
            gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_MAG_FILTER, filt)
        gl.glUniform1i(self.loc["tex_left"], 0)
        gl.glUniform1i(self.loc["tex_right"], 1)
        gl.glUniform1i(self.loc["kind_left"], int(kind_left))
        gl.glUniform1i(self.loc["kind_right"], int(kind_right))
        gl.glUniform1f(self.loc["split"], float(split))
        gl.glUniform1f(self.loc["exposure"], float(exposure))
        gl.glUniform1f(self.loc["heat_gain"], float(heat_gain))
        gl.glBindVertexArray(self.vao)
        gl.glDrawArrays(gl.GL_TRIANGLES, 0, 6)
        gl.glBindVertexArray(0)
        gl.glActiveTexture(gl.GL_TEXTURE0)
        gl.glUseProgram(0)

    def release(self) -> None:
        if self.textures:
            gl.glDeleteTextures([t[0] for t in self.textures.values()])
        self.textures.clear()
        gl.glDeleteVertexArrays(1, [self.vao])
        gl.glDeleteProgram(self.program)


def read_framebuffer(width: int, height: int) -> np.ndarray:
    """The back buffer as an HxWx3 uint8 array, top row first (call after drawing, before swapping)."""
    gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
    gl.glReadBuffer(gl.GL_BACK)
    data = gl.glReadPixels(0, 0, width, height, gl.GL_RGB, gl.GL_UNSIGNED_BYTE)
    if not isinstance(data, (bytes, bytearray)):
        data = np.asarray(data).tobytes()
    return np.frombuffer(data, np.uint8).reshape(height, width, 3)[::-1].copy()

