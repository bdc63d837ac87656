@echo off
rem Called by the set-up scripts: make (or reuse) the repo's .venv and install %1 into it.
rem A copy of each installed requirements file is kept in .venv\; when it still matches, nothing is reinstalled.
set "REPO_ROOT=%~dp0.."
set "VENV=%REPO_ROOT%\.venv"
set "VENV_PY=%VENV%\Scripts\python.exe"
if not exist "%VENV_PY%" (
    echo Creating "%VENV%"
    py -3.11 -m venv "%VENV%" 2>nul || python -m venv "%VENV%" || (echo Error: Python 3.11 not found & exit /b 1)
    "%VENV_PY%" -m pip install --quiet --upgrade pip || exit /b 1
)
set "STAMP=%VENV%\installed-%~nx1"
fc /b "%REPO_ROOT%\%~1" "%STAMP%" >nul 2>&1 && fc /b "%REPO_ROOT%\requirements.txt" "%VENV%\installed-requirements.txt.base" >nul 2>&1 && exit /b 0
echo Installing %~1 into %VENV% (first run takes a few minutes)
"%VENV_PY%" -m pip install --quiet --disable-pip-version-check -r "%REPO_ROOT%\%~1" || exit /b 1
copy /y "%REPO_ROOT%\%~1" "%STAMP%" >nul
copy /y "%REPO_ROOT%\requirements.txt" "%VENV%\installed-requirements.txt.base" >nul
exit /b 0
