@echo off
rem 5.XSeg) data_src mask - remove: delete the XSeg labels (polygons) of every face in
rem data_src/aligned. Asks first; --yes deletes without asking.
rem Extra arguments go to main.py; set WORKSPACE=folder overrides the workspace folder.
setlocal
call "%~dp0_env.bat" || (pause & exit /b 1)
"%VENV_PY%" "%REPO_ROOT%\main.py" xseg remove-labels ^
    --input-dir "%WORKSPACE%\data_src\aligned" ^
    %*
set "RC=%ERRORLEVEL%"
pause
exit /b %RC%
