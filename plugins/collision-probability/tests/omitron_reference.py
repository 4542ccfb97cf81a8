"""The reference Pc of CARA's Omitron case (tests/cara.rs, OMITRON_REFERENCE_PC): CARA's Pc2D_Foster formulation,
integrated by mpmath at 30 digits. Run: python3 tests/omitron_reference.py (needs mpmath)."""

from mpmath import exp, matrix, mp, mpf, norm, pi, quad, sqrt

mp.dps = 30
# Pc2D_Foster_UnitTest.m (nasa/CARA_Analysis_Tools, a80d01639ad80b55ae4dddd9429fcc0d471e1c26): km, km/s, km^2.
r1 = matrix([378.39559, 4305.721887, 5752.767554])
v1 = matrix([2.360800244, 5.580331936, -4.322349039])
r2 = matrix([374.5180598, 4307.560983, 5751.130418])
v2 = matrix([-5.388125081, -3.946827739, 3.322820358])
c1 = matrix([[44.5757544811362, 81.6751751052616, -67.8687662707124],
             [81.6751751052616, 158.453402956163, -128.616921644857],
             [-67.8687662707124, -128.616921644858, 105.490542562701]])
c2 = matrix([[2.31067077720423, 1.69905293875632, -1.4170164577661],
             [1.69905293875632, 1.24957388457206, -1.04174164279599],
             [-1.4170164577661, -1.04174164279599, 0.869260558223714]])
hbr = mpf("0.020")


def cross(a, b):
    return matrix([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def dot(a, b):
    return sum(a[i] * b[i] for i in range(3))


combined, r, v = c1 + c2, r1 - r2, v1 - v2
y = v / norm(v)
z = cross(r, v) / norm(cross(r, v))
x = cross(y, z)
xx, xz, zz = dot(x, combined * x), dot(x, combined * z), dot(z, combined * z)
det = xx * zz - xz * xz
x0 = norm(r)


def density(px, pz):
    return exp(-(zz * px * px - 2 * xz * px * pz + xx * pz * pz) / (2 * det))


def strip(px):
    half = sqrt(hbr * hbr - (px - x0) ** 2)
    return quad(lambda pz: density(px, pz), [-half, half])


print(quad(strip, [x0 - hbr, x0, x0 + hbr]) / (2 * pi * sqrt(det)))
